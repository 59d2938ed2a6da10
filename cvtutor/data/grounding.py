"""Captioned region sets: the 2-D scene world seen by a detector and a language model.

Chapter ``info_ground`` (weakly supervised phrase grounding, ECCV 2020 E44). A scene of
:func:`cvtutor.data.scenes2d.scenes2d` (boxes, categories, colours, genders; never rendered) becomes

* **regions** (what a frozen detector returns): exactly ``m`` boxes per image, the objects plus
  detector-like clutter (a jittered *duplicate* of an object, a *part* box inside one, a
  *background* box), in random order, each with a feature
  ``r = E_cat[category] + E_col[colour] + E_gen[gender] + E_box[box] + sigma * noise``
  (``E_cat`` shares a super-category component, so a circle looks more like an oval than a house);
* a **caption** (what the annotator wrote): ``"a <scene> scene with a <colour> <noun> , a <colour>
  <noun> and a <colour> <noun>"`` for ``n_mention`` objects, the noun drawn from the naming table
  :func:`naming_table` (the category word, a synonym or the hypernym of
  :mod:`cvtutor.data.language`; people by the gender label's word);
* the **ground truth** used only for evaluation: which objects each phrase denotes
  (:func:`noun_truth`, the rule of :func:`cvtutor.data.language.noun_matches`).

The language side stands for BERT: :class:`ContextualEncoder` maps token ids (B, L) to contextual
features (B, L, d) by word vectors and one self-attention mixing layer, either *pretrained*
(fixed semantic vectors: synonyms close, super-category members clustered; frozen) or *random*
(trainable from scratch). Its masked-word distributions are analytic: :func:`slot_prior` is
``p(s' | c)`` (the caption model's noun distribution given the scene word) and
:func:`implication` says which words stay true when ``s`` is true (``q(s' | s, c)``'s support).
Everything is batched on the device and bit-identical for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
from torch import nn

from cvtutor.data import language as L
from cvtutor.data.scenes2d import catalog as K
from cvtutor.data.scenes2d.generate import Biases, scenes2d

FUNCTION_WORDS = ("a", "scene", "with", ",", "and")
SPECIALS = ("[MASK]",)


def _nouns() -> tuple[str, ...]:
    words: list[str] = []
    for c in K.NAMES:
        if c == "person":
            words += ["man", "woman", "person"]
        else:
            words += [c, *L.SYNONYMS.get(c, ())]
    words += sorted({h for h in L.HYPERNYMS.values()} - set(words))
    return tuple(dict.fromkeys(words))


NOUNS: tuple[str, ...] = _nouns()
VOCAB: tuple[str, ...] = SPECIALS + FUNCTION_WORDS + K.SCENE_NAMES + K.COLOR_NAMES + NOUNS
WORD_ID = {w: i for i, w in enumerate(VOCAB)}
NOUN_IDS = tuple(WORD_ID[w] for w in NOUNS)
REGION_KINDS = ("object", "duplicate", "part", "background")


def noun_truth(device: torch.device | str = "cpu") -> torch.Tensor:
    """(V, C, 2) bool: vocabulary word v can name an object of category c with gender label g
    (0 man, 1 woman; ignored outside people), by :func:`cvtutor.data.language.noun_matches`.
    False for every word that is not a noun."""
    out = torch.zeros(len(VOCAB), len(K.NAMES), 2, dtype=torch.bool)
    for w in NOUNS:
        for c, name in enumerate(K.NAMES):
            for g in (0, 1):
                out[WORD_ID[w], c, g] = L.noun_matches(w, name, g if name == "person" else -1)
    return out.to(device)


def implication(device: torch.device | str = "cpu") -> torch.Tensor:
    """(V, V) bool ``imp[s, s']``: every object that noun ``s`` can name, ``s'`` can name too
    (``s'`` is ``s``, a synonym or a hypernym of it), so the caption stays true when ``s'``
    replaces ``s``. False for non-nouns."""
    t = noun_truth().flatten(1).float()  # (V, 2C)
    inter = t @ t.T
    imp = (inter == t.sum(1, keepdim=True)) & (t.sum(1, keepdim=True) > 0)
    return imp.to(device)


def naming_table(p_synonym: float = 0.3, p_hypernym: float = 0.1,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """(C, 2, V) the caption writer's P(noun word | category, gender label): the category word,
    else a synonym (``p_synonym``, shared equally; none: the category word), else the hypernym
    (``p_hypernym``); a person is "man"/"woman" by the label, "person" with ``p_hypernym``."""
    if not (0 <= p_synonym and 0 <= p_hypernym and p_synonym + p_hypernym <= 1):
        raise ValueError(f"need p_synonym, p_hypernym >= 0 with sum <= 1, got {p_synonym}, "
                         f"{p_hypernym}")
    out = torch.zeros(len(K.NAMES), 2, len(VOCAB))
    for c, name in enumerate(K.NAMES):
        for g in (0, 1):
            if name == "person":
                out[c, g, WORD_ID[L.PERSON_WORDS[g]]] = 1 - p_hypernym
                out[c, g, WORD_ID["person"]] = p_hypernym
                continue
            syn = L.SYNONYMS.get(name, ())
            out[c, g, WORD_ID[name]] = 1 - p_hypernym - (p_synonym if syn else 0.0)
            for s in syn:
                out[c, g, WORD_ID[s]] = p_synonym / len(syn)
            out[c, g, WORD_ID[L.HYPERNYMS[name]]] += p_hypernym
    return out.to(device)


def slot_prior(naming: torch.Tensor, biases: Biases = Biases()) -> torch.Tensor:
    """(S, V) ``p(s' | c)``: the probability that the noun slot of a caption of scene type s holds
    word s', when the context c is the scene word (the analytic masked language model): the
    scene's category frequencies (:func:`catalog.scene_weights`, the count skew of ``biases``)
    times the naming table, genders equally likely. Rows sum to 1."""
    w = K.scene_weights().to(naming.device)
    w = w * torch.exp(-biases.count_skew * torch.arange(w.shape[1], device=w.device))
    w = w / w.sum(1, keepdim=True)
    return torch.einsum("sc,cv->sv", w, naming.mean(1))


@dataclass(frozen=True)
class GroundingData:
    """``n`` captioned images. Per image: ``tokens`` (n, T) word ids of :data:`VOCAB`,
    ``scene`` (n,), ``target`` (n,) the mention whose noun the language loss replaces.
    Per mention (n, M): ``mention_slot`` the object slot, ``gt_boxes`` (n, M, G, 4) and
    ``gt_valid`` (n, M, G) the boxes of every object the phrase denotes (``[x, y, w, h]``).
    Per region (n, m): ``features`` (n, m, d_r), ``boxes`` (n, m, 4), ``region_slot`` (the
    object it shows, -1 background), ``region_kind`` (into :data:`REGION_KINDS`).
    ``noun_pos`` and ``color_pos`` (M,) are the token positions of each mention's words."""

    tokens: torch.Tensor
    scene: torch.Tensor
    target: torch.Tensor
    mention_slot: torch.Tensor
    gt_boxes: torch.Tensor
    gt_valid: torch.Tensor
    features: torch.Tensor
    boxes: torch.Tensor
    region_slot: torch.Tensor
    region_kind: torch.Tensor
    noun_pos: torch.Tensor
    color_pos: torch.Tensor
    size: int

    def __len__(self) -> int:
        return len(self.tokens)

    def subset(self, index: torch.Tensor | slice) -> "GroundingData":
        per_image = ("tokens", "scene", "target", "mention_slot", "gt_boxes", "gt_valid",
                     "features", "boxes", "region_slot", "region_kind")
        return replace(self, **{k: getattr(self, k)[index] for k in per_image})

    def to(self, device: torch.device | str) -> "GroundingData":
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)
                                if isinstance(getattr(self, f.name), torch.Tensor)})

    def target_tokens(self) -> torch.Tensor:
        """(n,) the word id of each caption's target noun."""
        pos = self.noun_pos[self.target]
        return self.tokens.gather(1, pos[:, None])[:, 0]


def caption_positions(n_mention: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Token positions (M,) of the colour and the noun of each mention, and the caption length:
    ``a <scene> scene with`` then ``a <colour> <noun>`` joined by ``,`` and a final ``and``."""
    if n_mention < 1:
        raise ValueError(f"n_mention must be >= 1, got {n_mention}")
    color_pos = torch.tensor([4 + 4 * i + 1 for i in range(n_mention)])
    return color_pos, color_pos + 1, 4 + 4 * n_mention - 1


def caption_text(tokens: torch.Tensor) -> str:
    """The words of one caption (T,) as a string."""
    return " ".join(VOCAB[int(t)] for t in tokens).replace(" ,", ",")


@dataclass(frozen=True)
class RegionFeatures:
    """The fixed "detector" of a world: embedding tables ``cat`` (C, d), ``col`` (11, d),
    ``gen`` (2, d), ``box`` (4, d) (a linear map of ``[cx, cy, w, h] / size - 1/2``), ``part``
    (d,) and ``background`` (d,) offsets, and the noise level ``sigma``."""

    cat: torch.Tensor
    col: torch.Tensor
    gen: torch.Tensor
    box: torch.Tensor
    part: torch.Tensor
    background: torch.Tensor
    sigma: float

    @classmethod
    def random(cls, dim: int = 64, sigma: float = 0.2, super_share: float = 0.7,
               seed: int = 0, device: torch.device | str = "cpu") -> "RegionFeatures":
        """Unit-scale random tables; a category's row is ``super_share`` of its super-category's
        direction plus the rest of its own (both unit vectors)."""
        g = torch.Generator().manual_seed(10_007 + seed)
        unit = lambda *s: nn.functional.normalize(torch.randn(*s, dim, generator=g), dim=-1)  # noqa
        sup = unit(len(K.SUPERCATEGORIES))
        sup_of = torch.tensor([K.SUPERCATEGORIES.index(c.supercategory) for c in K.CATEGORIES])
        cat = super_share * sup[sup_of] + math.sqrt(1 - super_share ** 2) * unit(len(K.NAMES))
        t = dict(cat=cat, col=0.8 * unit(len(K.COLOR_NAMES)), gen=0.6 * unit(2),
                 box=0.5 * unit(4), part=unit(1)[0], background=unit(1)[0])
        return cls(**{k: v.to(device) for k, v in t.items()}, sigma=sigma)


def grounding_data(n: int, n_regions: int = 10, n_mention: int = 3, max_objects: int = 6,
                   size: int = 64, region_dim: int = 64, sigma: float = 0.2,
                   p_synonym: float = 0.3, p_hypernym: float = 0.1, p_duplicate: float = 0.4,
                   p_part: float = 0.3, biases: Biases = Biases(), seed: int = 0,
                   detector_seed: int = 0, device: torch.device | str = "cpu") -> GroundingData:
    """``n`` captioned region sets (module doc). Scenes hold ``n_mention + 1`` to ``max_objects``
    objects (scenes where fewer could be placed are redrawn); the ``n_regions - objects`` extra
    regions are duplicates (``p_duplicate``), parts (``p_part``) or background. The detector's
    tables come from ``detector_seed`` (one world, many samples); the scenes from ``seed``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not n_mention + 1 <= max_objects <= n_regions:
        raise ValueError(f"need n_mention + 1 <= max_objects <= n_regions, got {n_mention}, "
                         f"{max_objects}, {n_regions}")
    if not (0 <= p_duplicate and 0 <= p_part and p_duplicate + p_part <= 1):
        raise ValueError(f"need p_duplicate, p_part >= 0 with sum <= 1, got {p_duplicate}, "
                         f"{p_part}")
    device = torch.device(device)
    s = scenes2d(int(n * 1.25) + 8, size, min_objects=n_mention + 1, max_objects=max_objects,
                 lookalike=0.0, biases=biases, seed=seed, device=device)
    keep = torch.nonzero(s.valid.sum(1) >= n_mention + 1)[:n, 0]  # one sync, at generation
    if len(keep) < n:
        raise RuntimeError(f"only {len(keep)} of the scenes hold {n_mention + 1} objects; lower "
                           "n_mention or raise max_objects")
    s = s.subset(keep)
    g = torch.Generator(device=device).manual_seed(seed * 7919 + 17)
    rand = lambda *shape: torch.rand(shape, generator=g, device=device)  # noqa: E731
    rows = torch.arange(n, device=device)
    m_obj = s.valid.shape[1]
    gl = s.gender_label.clamp_min(0)
    # mentions: n_mention distinct valid slots in random order
    order = torch.argsort(torch.where(s.valid, rand(n, m_obj), 2.0), dim=1)
    mention = order[:, :n_mention]
    naming = naming_table(p_synonym, p_hypernym, device)
    probs = naming[s.category.gather(1, mention), gl.gather(1, mention)]  # (n, M, V)
    noun = torch.multinomial(probs.reshape(-1, len(VOCAB)), 1, generator=g).reshape(n, n_mention)
    color_word = torch.tensor([WORD_ID[c] for c in K.COLOR_NAMES], device=device)
    color = color_word[s.color.gather(1, mention)]
    color_pos, noun_pos, length = caption_positions(n_mention)
    tokens = torch.empty(n, length, dtype=torch.long, device=device)
    scene_word = torch.tensor([WORD_ID[w] for w in K.SCENE_NAMES], device=device)
    tokens[:, 0], tokens[:, 1] = WORD_ID["a"], scene_word[s.scene]
    tokens[:, 2], tokens[:, 3] = WORD_ID["scene"], WORD_ID["with"]
    for i in range(n_mention):
        p = int(color_pos[i])
        tokens[:, p - 1], tokens[:, p], tokens[:, p + 1] = WORD_ID["a"], color[:, i], noun[:, i]
        if i < n_mention - 1:
            tokens[:, p + 2] = WORD_ID["and"] if i == n_mention - 2 else WORD_ID[","]
    # what each phrase denotes: every object its noun can name with the same colour
    truth = noun_truth(device)
    names = truth[noun[:, :, None], s.category[:, None, :], gl[:, None, :]]  # (n, M, m_obj)
    same_color = s.color.gather(1, mention)[:, :, None] == s.color[:, None, :]
    gt_valid = names & same_color & s.valid[:, None, :]
    gt_boxes = s.boxes[:, None].expand(-1, n_mention, -1, -1)
    # regions: the objects, then clutter in the free slots, shuffled
    m = n_regions
    src = torch.argsort(torch.where(s.valid, 0.0, 1.0 + rand(n, m_obj)), dim=1)  # valid first
    n_obj = s.valid.sum(1)
    j = torch.arange(m, device=device)
    is_obj = j[None] < n_obj[:, None]
    pick = torch.where(is_obj, src[:, j.clamp_max(m_obj - 1)],
                       order[rows[:, None], (rand(n, m) * n_obj[:, None]).long()])
    u = rand(n, m)
    kind = torch.where(is_obj, 0, torch.where(u < p_duplicate, 1,
                                              torch.where(u < p_duplicate + p_part, 2, 3)))
    obj_box = s.boxes.gather(1, pick[..., None].expand(-1, -1, 4))
    jitter = (rand(n, m, 4) - 0.5) * 0.2 * obj_box[..., 2:].repeat(1, 1, 2)
    dup_box = obj_box + jitter
    frac = 0.35 + 0.2 * rand(n, m, 2)  # a part: a corner sub-box of 35-55 % of each side
    corner = (rand(n, m, 2) < 0.5).float()
    part_wh = obj_box[..., 2:] * frac
    part_box = torch.cat([obj_box[..., :2] + corner * (obj_box[..., 2:] - part_wh), part_wh], -1)
    bg_wh = size * (0.15 + 0.3 * rand(n, m, 2))
    bg_box = torch.cat([(size - bg_wh) * rand(n, m, 2), bg_wh], -1)
    boxes = torch.where((kind <= 1)[..., None], torch.where((kind == 0)[..., None], obj_box,
                                                            dup_box),
                        torch.where((kind == 2)[..., None], part_box, bg_box))
    tab = RegionFeatures.random(region_dim, sigma, seed=detector_seed, device=device)
    cat, col = s.category.gather(1, pick), s.color.gather(1, pick)
    gen = s.gender.gather(1, pick)
    geo = torch.cat([(boxes[..., :2] + boxes[..., 2:] / 2), boxes[..., 2:]], -1) / size - 0.5
    obj_feat = tab.cat[cat] + tab.col[col] + torch.where((gen >= 0)[..., None],
                                                         tab.gen[gen.clamp_min(0)], 0.0)
    feat = torch.where((kind <= 1)[..., None], obj_feat,
                       torch.where((kind == 2)[..., None], 0.5 * obj_feat + tab.part,
                                   tab.background.expand(n, m, -1)))
    noise = torch.randn(n, m, region_dim, generator=g, device=device)
    feat = feat + geo @ tab.box + sigma * noise
    slot = torch.where(kind == 3, -1, pick)
    perm = torch.argsort(rand(n, m), dim=1)
    take = lambda x: x.gather(1, perm.reshape(n, m, *([1] * (x.ndim - 2))).expand_as(x))  # noqa
    target = torch.randint(0, n_mention, (n,), generator=g, device=device)
    return GroundingData(tokens, s.scene, target, mention, gt_boxes, gt_valid, take(feat),
                         take(boxes), take(slot), take(kind), noun_pos.to(device),
                         color_pos.to(device), size)


class ContextualEncoder(nn.Module):
    """The BERT analogue: token ids (B, T) -> contextual features (B, T, d),
    ``h = e + lam * softmax((e Wq)(e Wk)^T / sqrt(d), no self) (e Wv)``.

    ``pretrained=True``: ``e`` are fixed semantic vectors (a noun's super-category direction plus
    its category's, synonyms and the category word within ``0.15`` of each other, a hypernym the
    super-category direction alone, "man"/"woman" the person direction plus a gender one) and the
    mixing weights fixed random; nothing is trained (frozen, as BERT in the paper). ``False``:
    the same architecture from random weights, every parameter trainable."""

    def __init__(self, dim: int = 32, pretrained: bool = True, mix: float = 0.5, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(20_011 + seed)
        unit = lambda *s: nn.functional.normalize(torch.randn(*s, dim, generator=g), dim=-1)  # noqa
        self.dim, self.mix, self.pretrained = dim, mix, pretrained
        emb = unit(len(VOCAB)) if not pretrained else self._semantic(unit)
        self.embed = nn.Embedding.from_pretrained(emb, freeze=pretrained)
        w = torch.randn(3, dim, dim, generator=g) / math.sqrt(dim)
        self.wq, self.wk, self.wv = (nn.Parameter(x, requires_grad=not pretrained) for x in w)

    @staticmethod
    def _semantic(unit) -> torch.Tensor:
        e = unit(len(VOCAB))  # function, scene and colour words: their own directions
        sup = {s: unit(1)[0] for s in dict.fromkeys(L.HYPERNYMS.values())}
        cat = {c: unit(1)[0] for c in K.NAMES}
        gender = unit(2)
        for c in K.NAMES:
            words = ["man", "woman", "person"] if c == "person" else [c, *L.SYNONYMS.get(c, ())]
            base = 0.6 * sup[L.HYPERNYMS[c]] + 0.8 * cat[c]
            for w in words:
                vec = base + 0.15 * unit(1)[0]
                if w in ("man", "woman"):
                    vec = vec + 0.7 * gender[("man", "woman").index(w)]
                e[WORD_ID[w]] = vec
        for h, v in sup.items():
            e[WORD_ID[h]] = v + 0.15 * unit(1)[0]
        return e

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.dtype != torch.long:
            raise ValueError(f"tokens must be (B, T) long word ids, got {tokens.dtype} "
                             f"{tuple(tokens.shape)}")
        e = self.embed(tokens)
        s = (e @ self.wq) @ (e @ self.wk).transpose(1, 2) / math.sqrt(self.dim)
        eye = torch.eye(tokens.shape[1], dtype=torch.bool, device=tokens.device)
        a = s.masked_fill(eye, float("-inf")).softmax(-1)
        return e + self.mix * a @ (e @ self.wv)


def substitute(tokens: torch.Tensor, position: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Captions (B, K, T): caption b with its token at ``position[b]`` replaced by each of
    ``words[b]`` (B, K) — the negative captions ``(s', c)`` of a context ``c``."""
    if words.ndim != 2 or words.shape[0] != tokens.shape[0]:
        raise ValueError(f"words must be (B, K) with B = {tokens.shape[0]}, got "
                         f"{tuple(words.shape)}")
    out = tokens[:, None].repeat(1, words.shape[1], 1)
    return out.scatter(2, position[:, None, None].expand(-1, words.shape[1], 1), words[..., None])



class TinyMLM(nn.Module):
    """The ``full`` profile's BERT analogue: a ``layers``-layer transformer masked language model
    over :data:`VOCAB` (width ``dim``, learned positions). :meth:`hidden` gives the contextual
    features (B, T, dim), :meth:`forward` the logits (B, T, V) of each position's word."""

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4, max_len: int = 32):
        super().__init__()
        self.dim = dim
        self.embed = nn.Embedding(len(VOCAB), dim)
        self.pos = nn.Parameter(0.02 * torch.randn(max_len, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, len(VOCAB))

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.dtype != torch.long or tokens.shape[1] > len(self.pos):
            raise ValueError(f"tokens must be (B, T <= {len(self.pos)}) long word ids, got "
                             f"{tokens.dtype} {tuple(tokens.shape)}")
        return self.encoder(self.embed(tokens) + self.pos[: tokens.shape[1]])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(tokens))


def mlm_batch(tokens: torch.Tensor, generator: torch.Generator, rate: float = 0.15
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of a batch (B, T): each position is chosen with probability ``rate`` (at
    least one per caption); a chosen token becomes [MASK] (80 %), a random word (10 %) or stays
    (10 %). Returns the corrupted tokens and the bool (B, T) of chosen positions."""
    dev = tokens.device
    u = torch.rand(tokens.shape, generator=generator, device=dev)
    chosen = u < rate
    first = torch.argmin(u, 1)
    chosen[torch.arange(len(tokens), device=dev), first] = True
    v = torch.rand(tokens.shape, generator=generator, device=dev)
    rnd = torch.randint(len(SPECIALS), len(VOCAB), tokens.shape, generator=generator, device=dev)
    out = torch.where(chosen & (v < 0.8), WORD_ID["[MASK]"], tokens)
    return torch.where(chosen & (v >= 0.8) & (v < 0.9), rnd, out), chosen


class MLMFeatures(nn.Module):
    """A :class:`TinyMLM`'s hidden states as word features: frozen (the pretrained analogue) or
    trained along with the critic (``frozen=False``: the random-init, fine-tuned analogue)."""

    def __init__(self, mlm: TinyMLM, frozen: bool = True):
        super().__init__()
        self.mlm, self.frozen = mlm, frozen
        for p in mlm.parameters():
            p.requires_grad_(not frozen)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            self.mlm.eval()
            with torch.no_grad():
                return self.mlm.hidden(tokens)
        return self.mlm.hidden(tokens)


@torch.no_grad()
def mlm_slot_distributions(mlm: TinyMLM, tokens: torch.Tensor, position: torch.Tensor,
                           chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """``p(s' | c)`` and ``q(s' | s, c)`` (n, V) from a masked LM: its word distribution at
    ``position`` (n,) with that token masked, and with the caption left as it is."""
    mlm.eval()
    rows = torch.arange(len(tokens), device=tokens.device)
    masked = tokens.clone()
    masked[rows, position] = WORD_ID["[MASK]"]
    ps, qs = [], []
    for i in range(0, len(tokens), chunk):
        sl = slice(i, i + chunk)
        r = rows[sl] - i
        ps.append(mlm(masked[sl])[r, position[sl]].softmax(-1))
        qs.append(mlm(tokens[sl])[r, position[sl]].softmax(-1))
    return torch.cat(ps), torch.cat(qs)
