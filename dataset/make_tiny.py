"""Generate ``dataset/eager-tiny``: a small 5-core dataset in RecBole atomic format.

Items belong to categories and brands; each user walks mostly through one category
in item order, so sequential models have something to learn. Timestamps are days
with ties, like the Amazon benchmarks. Run: ``python dataset/make_tiny.py``.
"""
import argparse
import csv
import os

import numpy as np

CATEGORIES = ["Nail Polish", "Lipstick", "Shampoo", "Face Cream", "Perfume", "Eyeliner"]
BRANDS = ["OPI", "Maybelline", "Loreal", "Nivea", "Chanel", "Revlon", "Essie"]
ADJECTIVES = ["Classic", "Matte", "Glossy", "Gentle", "Deep", "Fresh", "Velvet", "Bright"]


def make_tiny(out_dir, n_users=150, items_per_category=12, seed=2024):
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.basename(os.path.normpath(out_dir))
    items = []
    for c, category in enumerate(CATEGORIES):
        for j in range(items_per_category):
            brand = BRANDS[(c + j) % len(BRANDS)]
            title = f"{brand} {ADJECTIVES[j % len(ADJECTIVES)]} {category} No.{j + 1}"
            items.append((f"I{c:02d}{j:03d}", title, brand, category))
    # Empty titles exercise the text fallback of the semantic encoder.
    items[5] = (items[5][0], "", items[5][2], items[5][3])
    items[30] = (items[30][0], "", items[30][2], items[30][3])

    n_items = len(items)
    counts = np.zeros(n_items, dtype=int)
    rows = []
    for u in range(n_users):
        category = rng.integers(len(CATEGORIES))
        position = rng.integers(items_per_category)
        day = 16000 + rng.integers(0, 300)
        for _ in range(rng.integers(6, 14)):
            if rng.random() < 0.15:
                category = rng.integers(len(CATEGORIES))
            item = category * items_per_category + position % items_per_category
            rows.append((f"U{u:04d}", items[item][0], int(day) * 86400))
            counts[item] += 1
            position += 1 if rng.random() < 0.8 else 2
            day += int(rng.integers(0, 3))  # 0 days: tied timestamps
    # Top up rare items so the data stays 5-core.
    for item in np.flatnonzero(counts < 5):
        for k in range(5 - counts[item]):
            u = int(rng.integers(n_users))
            rows.append((f"U{u:04d}", items[item][0], (16400 + k) * 86400))
    rows.sort(key=lambda r: (r[0], r[2]))  # stable: grouped by user, chronological

    with open(os.path.join(out_dir, f"{name}.inter"), "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["user_id:token", "item_id:token", "timestamp:float"])
        w.writerows(rows)
    with open(os.path.join(out_dir, f"{name}.item"), "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["item_id:token", "title:token", "brand:token", "categories:token_seq"])
        for item_id, title, brand, category in items:
            w.writerow([item_id, title, brand, f"'Beauty', '{category}'"])
    return len(rows), n_items


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "eager-tiny"))
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    n_rows, n_items = make_tiny(args.out, seed=args.seed)
    print(f"wrote {n_rows} interactions over {n_items} items to {args.out}")
