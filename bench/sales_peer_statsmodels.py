"""Prices the statsmodels road to the statistical peer: STL + ETSModel chosen by AICc per series.

The alternative to statsforecast for data.peer (statsmodels needs no pandas < 3): the single-
season path of statsforecast's MSTL (statsmodels' STL, seasonal window 11, degree 0; statsmodels'
own MSTL drops a 52-week season at 104 weeks of history and fails) and ETSModel over additive /
multiplicative error x no / additive / damped trend, the AutoETS('ZZN') space. Times a random
sample of Walmart's series up to the test origin and scales to all of them: CPU seconds.

Usage: python bench/sales_peer_statsmodels.py [DATA_DIR] [N_SERIES]  (default walmart, 30)
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from statsmodels.tsa.seasonal import STL

H, SEASON = 39, 52


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared" / "data" / "walmart"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    df = pd.read_csv(data / "train.csv.gz", parse_dates=["Date"])
    P = df.pivot_table(index="Date", columns=["Store", "Dept"], values="Weekly_Sales")
    Y = np.nan_to_num(P.to_numpy()[: len(P) - H])
    cols = np.random.default_rng(0).choice(Y.shape[1], n, replace=False)
    warnings.filterwarnings("ignore")  # convergence warnings of the ETS fits
    t0, fits = time.process_time(), 0
    for j in cols:
        y = Y[:, j]
        trend = y - STL(y, period=SEASON, seasonal=11, seasonal_deg=0).fit().seasonal
        for err in ("add", "mul"):
            if err == "mul" and (trend <= 0).any():
                continue
            for tr, damped in ((None, False), ("add", False), ("add", True)):
                try:
                    ETSModel(trend, error=err, trend=tr, damped_trend=damped).fit(disp=False)
                    fits += 1
                except (ValueError, np.linalg.LinAlgError):
                    pass
    cpu = time.process_time() - t0
    print(f"statsmodels STL + ETSModel: {cpu:.1f} s CPU for {n} series ({fits} ETS fits): "
          f"{cpu / n * Y.shape[1]:,.0f} s CPU for all {Y.shape[1]:,} (goal 60)")  # fmt: skip


if __name__ == "__main__":
    main()
