"""Seconds of one ``full_sort_predict`` over the first 1024 test users of a saved model
(after one untimed call), two torch threads: ``python scripts/full_sort_timing.py CHECKPOINT``."""
import sys
import time

import torch

torch.set_num_threads(2)
checkpoint, sys.argv = sys.argv[1], sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
from recbole_eager.quick_start import load_data_and_model  # noqa: E402

_, model, _, _, _, test_data = load_data_and_model(checkpoint)
model.eval()
batch = next(iter(test_data))[0][torch.arange(1024)]
with torch.no_grad():
    model.full_sort_predict(batch)
    start = time.perf_counter()
    model.full_sort_predict(batch)
print(f"full_sort_predict, 1024 users: {time.perf_counter() - start:.3f} s")
