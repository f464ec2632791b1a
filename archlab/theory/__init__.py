"""Theory as executable tools: conv arithmetic, stable softmax, LSTM backward through time."""
