"""Top-k recommendations from a saved model, for a known user or any item history.

    python -m recbole_eager.recommend --model_file saved/EAGER-....pth --user USER_TOKEN [--topk 10] [--json]
    python -m recbole_eager.recommend --model_file saved/SASRec-....pth --history "ITEM ITEM ..."
    python -m recbole_eager.recommend --model_file ... --input queries.txt [--input_kind user|history] [--output out.jsonl]

Users and items are named by their tokens in the dataset files (ASINs, Yelp ids). A user's
history is all their interactions (train, valid and test), oldest first; a history is cut
to the model's ``MAX_ITEM_LIST_LENGTH`` most recent items. Items already in the history are
left out unless ``--keep_history``. EAGER recommends through its generative search (its
beam grows by the history length when history items are left out, so k items remain);
RecBole's models through ``full_sort_predict``.
"""
import argparse
import json
import logging
import sys

import torch
from recbole.data.interaction import Interaction
from tqdm import tqdm

from recbole_eager.model.beam_search import top_candidates
from recbole_eager.quick_start import load_data_and_model
from recbole_eager.utils import RecBoleEagerError


class Recommender:
    """A trained model and its dataset, answering top-k queries by tokens.

    ``recommend(history=[item tokens])`` or ``recommend(user=token)`` returns a list of
    ``{"rank", "item", "title", "score", "streams"}`` (``streams``: EAGER only, the streams
    whose beams found the item; ``title``: when the item file has one)."""

    def __init__(self, model_file, config_overrides=None):
        self.config, self.model, self.dataset, _, _, _ = load_data_and_model(model_file, config_overrides)
        self.model.eval()
        self.uid, self.iid = self.config["USER_ID_FIELD"], self.config["ITEM_ID_FIELD"]
        self.max_length = self.config["MAX_ITEM_LIST_LENGTH"]
        self.generative = hasattr(self.model, "candidates")
        self.titles = self._titles()
        # RecBole's sequential dataset holds one row per target item, each user's rows in time
        # order, the first row's history being the user's first item.
        feat = self.dataset.inter_feat
        first_items = feat[self.model.ITEM_SEQ][:, 0].tolist()
        self.user_history = {}
        for user, first, target in zip(feat[self.uid].tolist(), first_items, feat[self.iid].tolist()):
            self.user_history.setdefault(user, [first]).append(target)

    def _titles(self):
        feat = self.dataset.item_feat
        if feat is None or "title" not in feat.columns:
            return None
        titles = self.dataset.id2token("title", feat["title"].numpy())
        return dict(zip(feat[self.iid].tolist(), (str(t) for t in titles)))

    def user_items(self, user):
        """Item ids of a user token's full history."""
        try:
            uid = int(self.dataset.token2id(self.uid, user))
        except ValueError:
            raise RecBoleEagerError(f"unknown user '{user}': not a {self.uid} of dataset '{self.config['dataset']}'") from None
        return self.user_history.get(uid, [])

    def history_items(self, tokens):
        """Item ids of item tokens; unknown ones are skipped with a warning, none known is an error."""
        known, unknown = [], []
        for token in tokens:
            try:
                known.append(int(self.dataset.token2id(self.iid, token)))
            except ValueError:
                unknown.append(token)
        if unknown:
            logging.getLogger().warning(f"unknown items skipped: {', '.join(unknown)}")
        if not known:
            raise RecBoleEagerError(f"no known item in the history {list(tokens)} (dataset '{self.config['dataset']}')")
        return known

    def _interaction(self, histories):
        histories = [h[-self.max_length:] for h in histories]
        seq = torch.zeros(len(histories), self.max_length, dtype=torch.long)
        for row, items in enumerate(histories):
            seq[row, : len(items)] = torch.tensor(items)
        data = {
            self.model.ITEM_SEQ: seq,
            self.model.ITEM_SEQ_LEN: torch.tensor([len(h) for h in histories]),
            self.uid: torch.zeros(len(histories), dtype=torch.long),  # models with user embeddings see the padding user
        }
        return Interaction(data).to(self.model.device), histories

    @torch.no_grad()
    def top(self, histories, k=10, exclude_history=True):
        """Top-``k`` item ids and scores [B, k] of item-id histories, history items left out
        if ``exclude_history``, and for EAGER the streams whose beams found each item
        ({item id: [streams]} per row; otherwise None)."""
        interaction, histories = self._interaction(histories)
        if self.generative:
            return self._generative_top(interaction[self.model.ITEM_SEQ], k, exclude_history)
        scores = self.model.full_sort_predict(interaction).view(len(histories), -1).float()
        scores[:, 0] = float("-inf")
        if exclude_history:
            for row, items in enumerate(histories):
                scores[row, items] = float("-inf")
        top_scores, top_items = scores.topk(min(k, scores.size(1)), dim=1)
        return top_items, top_scores, None

    def _generative_top(self, item_seq, k, exclude_history):
        """EAGER's candidates, ranked without a dense score matrix (``top_candidates``)."""
        lengths = (item_seq != 0).sum(dim=1)
        beam = max(self.model.beam_size, k + (int(lengths.max()) if exclude_history else 0))
        configured, self.model.beam_size = self.model.beam_size, beam
        try:
            with self.model.autocast():  # histories are left-aligned: cut the padding
                items, log_probs = self.model.candidates(item_seq[:, : max(int(lengths.max()), 1)])
        finally:
            self.model.beam_size = configured
        top_items, top_scores = top_candidates(items, log_probs, k, item_seq if exclude_history else None)
        names = self.model.merged_streams()
        streams = []
        for row in items.tolist():
            found = {}
            for position, item in enumerate(row):
                found.setdefault(item, []).append(names[position // beam])
            streams.append(found)
        return top_items, top_scores, streams

    def recommend_many(self, histories, k=10, exclude_history=True):
        """One result list per item-id history (see the class docstring)."""
        top_items, top_scores, streams = self.top(histories, k, exclude_history)
        results = []
        for row, (values, items) in enumerate(zip(top_scores.tolist(), top_items.tolist())):
            tokens = self.dataset.id2token(self.iid, items)
            results.append([
                {
                    "rank": rank + 1, "item": str(token), "title": self.titles.get(item) if self.titles else None, "score": value,
                    **({"streams": sorted(set(streams[row].get(item, [])))} if streams is not None else {}),
                }
                for rank, (item, token, value) in enumerate(zip(items, tokens, values))
                if value > float("-inf")
            ])
        return results

    def recommend(self, history=None, user=None, k=10, exclude_history=True):
        """Top-``k`` for a history of item tokens or a user token."""
        if (history is None) == (user is None):
            raise RecBoleEagerError("give a history or a user, not both")
        items = self.user_items(user) if user is not None else self.history_items(history)
        return self.recommend_many([items], k, exclude_history)[0]


def _format(query, result):
    lines = [f"# {query}"]
    for r in result:
        title = f"  {r['title']}" if r.get("title") else ""
        streams = f"  [{'+'.join(r['streams'])}]" if "streams" in r else ""
        lines.append(f"{r['rank']:>3}  {r['item']}  {r['score']:.4f}{streams}{title}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_file", required=True, help="checkpoint saved by a run (saved/<Model>-....pth)")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--user", nargs="+", help="user token(s): each user's full known history")
    query.add_argument("--history", help='item tokens, oldest first, e.g. "B004756YJA B004ZT0SSG"')
    query.add_argument("--input", help="file with one query per line (see --input_kind)")
    parser.add_argument("--input_kind", choices=["user", "history"], default="history", help="what each --input line holds")
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--keep_history", action="store_true", help="allow items of the history in the results")
    parser.add_argument("--json", action="store_true", help="one JSON object per query and line")
    parser.add_argument("--output", help="write results here instead of standard output")
    parser.add_argument("--batch_size", type=int, default=256, help="queries per model call (--input)")
    parser.add_argument("--data_path", help="folder of the datasets, if not where the model was trained")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    logging.getLogger().setLevel(logging.WARNING)
    try:
        if args.topk < 1:
            raise RecBoleEagerError(f"--topk={args.topk} must be at least 1")
        recommender = Recommender(args.model_file, {"data_path": args.data_path} if args.data_path else None)
        if args.input:
            with open(args.input) as f:
                lines = [line.split() for line in f if line.strip()]
            kind = args.input_kind
        else:
            lines, kind = ([[u] for u in args.user], "user") if args.user else ([args.history.split()], "history")
        queries = [" ".join(tokens) for tokens in lines]
        histories = [recommender.user_items(t[0]) if kind == "user" else recommender.history_items(t) for t in lines]
        out = open(args.output, "w") if args.output else sys.stdout
        try:
            batches = range(0, len(histories), args.batch_size)
            for start in tqdm(batches, desc="recommend", disable=len(batches) < 2, file=sys.stderr):
                results = recommender.recommend_many(histories[start : start + args.batch_size], args.topk, not args.keep_history)
                for query, result in zip(queries[start:], results):
                    print(json.dumps({kind: query, "items": result}) if args.json else _format(f"{kind} {query}", result), file=out)
        finally:
            if out is not sys.stdout:
                out.close()
    except RecBoleEagerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
