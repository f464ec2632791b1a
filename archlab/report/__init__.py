"""The study report (Markdown + HTML) and what it gathers: model summaries, theory, EDA."""
