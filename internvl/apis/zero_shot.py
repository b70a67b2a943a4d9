"""Zero-shot classification and image-text retrieval with InternVL-C / InternVL-G."""
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data import build_transform, open_image
from ..models.internvl_clip import InternVLModel, tokenize_texts
from ..models.tokenizer import load_tokenizer

DEFAULT_TEMPLATES = ('a photo of a {}.',)


def load_clip_model(path: str | os.PathLike, dtype: Optional[torch.dtype] = None, device: str = 'cpu'
                    ) -> tuple[InternVLModel, Any]:
    """(model on ``device``, the folder's tokenizer); the tokenizer, being cheap, first."""
    tokenizer = load_tokenizer(path)
    return InternVLModel.from_pretrained(path, torch_dtype=dtype).to(device), tokenizer


def read_lines(path: str | os.PathLike, what: str) -> list[str]:
    """The non-empty lines of a text file; an empty file is an error naming it and ``what`` it should hold."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{what} file not found: {path}')
    lines = [line.strip() for line in path.read_text(encoding='utf-8').splitlines() if line.strip()]
    if not lines:
        raise ValueError(f'{path}: no {what} in the file (expected one per line)')
    return lines


@torch.no_grad()
def encode_images(model: InternVLModel, paths: Sequence[Path], mode: str = 'InternVL-C', batch_size: int = 8
                  ) -> torch.Tensor:
    """Image files -> L2-normalised image features [N, D] (progress bar over batches)."""
    transform = build_transform(model.vision_model.arch['img_size'])
    device, dtype = model.logit_scale.device, model.logit_scale.dtype
    features = []
    for start in tqdm(range(0, len(paths), batch_size), desc=f'encoding images ({mode})', unit='batch'):
        batch = torch.stack([transform(open_image(p)) for p in paths[start:start + batch_size]])
        features.append(F.normalize(model.encode_image(batch.to(device, dtype), mode).float(), dim=-1))
    return torch.cat(features)


@torch.no_grad()
def encode_texts(model: InternVLModel, tokenizer: Any, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
    """Texts -> L2-normalised text features [N, D] (``tokenize_texts``: prefix 'summarize:', 80 tokens)."""
    features = []
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc='encoding texts', unit='batch', disable=len(batches) < 2):
        ids = tokenize_texts(tokenizer, list(texts[start:start + batch_size])).to(model.logit_scale.device)
        features.append(F.normalize(model.encode_text(ids).float(), dim=-1))
    return torch.cat(features)


def class_embeddings(model: InternVLModel, tokenizer: Any, classes: Sequence[str],
                     templates: Sequence[str] = DEFAULT_TEMPLATES) -> torch.Tensor:
    """One feature per class: the normalised mean of its normalised template texts (CLIP's protocol)."""
    if not classes:
        raise ValueError('zero-shot classification needs at least one class name; the class list is empty')
    bad = [t for t in templates if '{}' not in t]
    if bad:
        raise ValueError(f'templates must contain {{}} where the class name goes: {bad}')
    rows = []
    for name in tqdm(classes, desc='encoding class names', unit='class'):
        rows.append(F.normalize(encode_texts(model, tokenizer, [t.format(name) for t in templates]).mean(0), dim=-1))
    return torch.stack(rows)


def zero_shot_predict(image_features: torch.Tensor, class_features: torch.Tensor, logit_scale: torch.Tensor,
                      topk: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities [N, K], top-k class indices [N, min(k, K)])."""
    probs = (logit_scale.exp().float() * image_features @ class_features.t()).softmax(dim=-1)
    return probs, probs.topk(min(topk, probs.shape[1]), dim=-1).indices


def retrieval_recall(image_features: torch.Tensor, text_features: torch.Tensor, text_to_image: Sequence[int],
                     ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k in % both ways. Image -> text: an image scores when one of its captions is among the
    k most similar texts; text -> image: a caption scores when its image is among the k most similar."""
    sims = image_features @ text_features.t()  # [I, T]
    owner = torch.as_tensor(text_to_image)
    results = {}
    for k in ks:
        top_texts = sims.topk(min(k, sims.shape[1]), dim=1).indices  # [I, k]
        i2t = (owner[top_texts] == torch.arange(sims.shape[0])[:, None]).any(dim=1).float().mean()
        top_images = sims.t().topk(min(k, sims.shape[0]), dim=1).indices  # [T, k]
        t2i = (top_images == owner[:, None]).any(dim=1).float().mean()
        results[f'image_to_text_R@{k}'] = 100 * i2t.item()
        results[f'text_to_image_R@{k}'] = 100 * t2i.item()
    return results
