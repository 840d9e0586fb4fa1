"""Prefix-sharing log-likelihood scoring for lm-eval: the shared question is run once per document.

A multiple-choice task sends lm-eval one loglikelihood request per answer choice, all with the same
context; lm-eval's HFLM runs (context + choice) through the model for every choice. `PrefixLM` keeps
HFLM's tokenisation (TemplateLM._encode_pair: trailing spaces moved to the continuation, context and
continuation encoded jointly, left truncation to max_length + 1 tokens) and changes only how the
requests are computed:

    pass 1  every distinct (truncated) context once, right-padded into one batch, with its
            key/value cache; its last position predicts every continuation's first token
    pass 2  the continuations' remaining tokens (cont[:-1]) of all groups in the batch, each row on
            its group's cache (selected per continuation, padded positions masked out, positions
            continuing the context's)

A request whose context no other request shares (WinoGrande's partial scoring: different contexts,
one continuation; rolling perplexity windows) is scored as a plain row in pass 1, as HFLM would.
One-token continuations (MMLU's " A"..." D") need no pass 2 at all. The language-model head and the
float32 log-softmax run only on the positions that are scored. Task YAMLs and lm-eval's metrics stay
the single source of truth: only `_loglikelihood_tokens` is replaced.
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm.auto import tqdm

from .scoring import check_precision, precision_context


def hflm_tokens(requests: list[tuple], max_length: int) -> int:
    """Tokens HFLM runs through the model for these (key, context, continuation) requests: one row
    of (context + continuation)[-(max_length+1):][:-1] per distinct context + continuation[:-1]
    (its one-token-continuation logits cache), padding not counted."""
    seen = {}
    for _, ctx, cont in requests:
        seen[tuple(ctx + cont[:-1])] = len((ctx + cont)[-(max_length + 1):]) - 1
    return sum(seen.values())


@register_model("lesa-prefix")
class PrefixLM(HFLM):
    """HFLM whose loglikelihood requests share their context's forward pass (see the module doc).

    precision: "fp32" or "bf16" (autocast; weights stay as loaded). token_budget: padded tokens per
    forward pass (and, for pass 2, cached + new tokens per pass), which bounds activation and cache
    memory. ``tokens_computed`` / ``tokens_hflm`` count what was run and what HFLM would have run.
    """

    def __init__(self, *args, precision: str = "fp32", token_budget: int = 4096, **kwargs):
        super().__init__(*args, **kwargs)
        self.precision, self.token_budget = check_precision(precision, self.device), int(token_budget)
        self.tokens_computed = self.tokens_hflm = 0
        cfg = self.model.config
        window = getattr(cfg, "sliding_window", None)
        # a padded cache shifts sliding windows: such models are scored request by request (HFLM)
        self._plain = bool(window) and getattr(cfg, "use_sliding_window", True) and window < self.max_length + 1

    # ------------------------------------------------------------------ model calls
    def _autocast(self):
        return precision_context(self.precision, self.device)

    def _hidden(self, ids: torch.Tensor, **kw):
        base = getattr(self.model, "base_model", None)
        if base is None or base is self.model:
            raise TypeError(f"{type(self.model).__name__} has no separate base model; use lm='hf'")
        return base(input_ids=ids, **kw)

    def _score(self, items: list[tuple[int, torch.Tensor, list[int]]]) -> dict[int, tuple[float, bool]]:
        """{request: (sum of log p(targets), greedy match)} from each request's (n, H) hidden states
        that predict its n targets; one head matmul for all of them (the head's 49k x H weight is
        read once, not once per request)."""
        if not items:
            return {}
        with self._autocast():
            logits = self.model.get_output_embeddings()(torch.cat([h for _, h, _ in items]))   # (N, V)
        logp = F.log_softmax(logits, dim=-1, dtype=torch.float32)
        t = torch.tensor([x for _, _, tg in items for x in tg], device=logp.device)
        ll, greedy = logp.gather(-1, t[:, None])[:, 0], logp.argmax(-1) == t
        out, s = {}, 0
        for i, _, tg in items:
            out[i] = (float(ll[s:s + len(tg)].sum()), bool(greedy[s:s + len(tg)].all()))
            s += len(tg)
        return out

    # ------------------------------------------------------------------ lm-eval entry point
    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        self.tokens_hflm += hflm_tokens(requests, self.max_length)
        if self._plain:
            self.tokens_computed += hflm_tokens(requests, self.max_length)
            with self._autocast():
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        L = self.max_length
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, (_, ctx, cont) in enumerate(requests):
            assert len(ctx) > 0 and 0 < len(cont) <= L
            full = (ctx + cont)[-(L + 1):]                     # HFLM's left truncation
            groups[tuple(full[:-len(cont)])].append(i)         # the context the model really sees
        # pass-1 rows: (tokens, request indices); a shared context's row is the context itself, a
        # lone request's row is context + continuation[:-1] (plain scoring)
        rows = []
        for c, idx in groups.items():
            if len(idx) == 1:
                rows.append((list(c) + requests[idx[0]][2][:-1], idx, False))
            else:
                rows.append((list(c), idx, True))
        rows.sort(key=lambda r: -len(r[0]))
        res: list[tuple[float, bool] | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="loglikelihood (prefix)")
        s = 0
        while s < len(rows):
            T, n = len(rows[s][0]), 1                  # similar lengths (at most 2x padding), token budget
            while s + n < len(rows) and (n + 1) * T <= self.token_budget and 2 * len(rows[s + n][0]) >= T:
                n += 1
            chunk = rows[s:s + n]
            s += n
            out = self._chunk(chunk, requests)
            for i, r in out.items():
                res[i] = r
                key = requests[i][0]
                if key is not None:
                    self.cache_hook.add_partial("loglikelihood", key, r)
            bar.update(sum(len(r[1]) for r in chunk))
        bar.close()
        return res

    @torch.inference_mode()
    def _chunk(self, chunk: list[tuple], requests) -> dict[int, tuple[float, bool]]:
        dev = self.device
        T = len(chunk[0][0])
        ids = torch.full((len(chunk), T), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        for b, (toks, _, _) in enumerate(chunk):
            ids[b, :len(toks)] = torch.tensor(toks)
        self.tokens_computed += sum(len(t) for t, _, _ in chunk)
        suffix = [(b, i) for b, (_, idx, shared) in enumerate(chunk) if shared
                  for i in idx if len(requests[i][2]) > 1]
        with self._autocast():          # right padding needs no mask: causal rows never see it
            out = self._hidden(ids.to(dev), use_cache=bool(suffix))
        h = out.last_hidden_state                                                # (B, T, H)
        items, first = [], {}
        for b, (toks, idx, shared) in enumerate(chunk):
            if not shared:                                   # plain row: last len(cont) positions
                cont = requests[idx[0]][2]
                items.append((idx[0], h[b, len(toks) - len(cont):len(toks)], cont))
                continue
            for i in idx:                                    # the context's last position predicts cont[0]
                cont = requests[i][2]
                if len(cont) == 1:                           # one-token continuation: done after pass 1
                    items.append((i, h[b, len(toks) - 1:len(toks)], cont))
                else:
                    first[i] = h[b, len(toks) - 1:len(toks)]
        res = self._score(items)
        if suffix:
            res.update(self._suffixes(chunk, requests, suffix, out.past_key_values, first))
        return res

    def _suffixes(self, chunk, requests, suffix, cache, first) -> dict[int, tuple[float, bool]]:
        """Pass 2: cont[:-1] of every shared-context continuation, on its group's cached keys/values."""
        from transformers import DynamicCache

        dev, P = self.device, len(chunk[0][0])
        kv = [(k, v) for k, v, *_ in cache]
        suffix.sort(key=lambda x: -len(requests[x[1]][2]))
        res, s = {}, 0
        while s < len(suffix):
            # rows of similar length (at most 2x padding) within the token budget (cache included)
            S = len(requests[suffix[s][1]][2]) - 1
            n = 1
            while (s + n < len(suffix) and (n + 1) * (P + S) <= self.token_budget
                   and 2 * (len(requests[suffix[s + n][1]][2]) - 1) >= S):
                n += 1
            part = suffix[s:s + n]
            s += n
            rows = torch.tensor([b for b, _ in part], device=dev)
            ids = torch.zeros((n, S), dtype=torch.long)
            mask = torch.zeros((n, P + S), dtype=torch.long)
            pos = torch.zeros((n, S), dtype=torch.long)
            for r, (b, i) in enumerate(part):
                plen, tail = len(chunk[b][0]), requests[i][2][:-1]
                ids[r, :len(tail)] = torch.tensor(tail)
                mask[r, :plen] = 1                              # the group's own context ...
                mask[r, P:] = 1                                 # ... and its continuation (right-padded)
                pos[r] = plen + torch.arange(S)
                self.tokens_computed += len(tail)
            past = DynamicCache(ddp_cache_data=[(k.index_select(0, rows), v.index_select(0, rows)) for k, v in kv])
            with self._autocast():
                h = self._hidden(ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                                 past_key_values=past, use_cache=True).last_hidden_state   # (n, S, H)
            del past
            res.update(self._score([(i, torch.cat([first[i], h[r, :len(requests[i][2]) - 1]]), requests[i][2])
                                    for r, (b, i) in enumerate(part)]))
        return res
