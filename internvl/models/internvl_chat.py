"""InternVL-Chat: InternViT -> pixel shuffle -> ``mlp1`` projector -> a transformers language model.

Shapes, for tiles of ``image_size`` (448) and patch ``p`` (14): the ViT gives ``[T, 1 + (448/14)**2, C]``
for ``T`` tiles; the cls token is dropped and the 32x32 grid is pixel-shuffled by ``downsample_ratio``
(0.5) to 16x16 tokens of ``4C`` channels, which ``mlp1`` (LayerNorm -> Linear -> GELU -> Linear) maps to
the language model's width. Each tile thus gives ``num_image_token`` = 256 embeddings, written over
the ``<IMG_CONTEXT>`` tokens of the prompt (``<img>`` + 256 x tiles ``<IMG_CONTEXT>`` + ``</img>``).

``select_layer`` indexes the ViT's hidden states as transformers does: entry 0 is the embedding
output, entry ``i`` the output of block ``i``; -1 is the last block. Blocks after the selected one are
not run. ``ps_version`` v1 leaves the shuffled grid transposed (the original's first release); v2
transposes it back.

Loads both published folder layouts (``from_pretrained``): OpenGVLab's remote-code one (config.json
with ``llm_config``; ``vision_model.*``, ``mlp1.*``, ``language_model.*``) and transformers' native
``InternVLForConditionalGeneration`` (config.json with ``text_config``; ``model.vision_tower.*``,
``model.multi_modal_projector.*``, ``model.language_model.*``, ``lm_head.*``). No remote code is run.
"""
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import (CheckpointError, arch_from_config, finish_loading, load_canonical, load_module, on_meta,
                          read_model_folder, refuse_unconsumed, take_prefix, to_canonical)
from .conversation import get_conv_template
from .intern_vit import InternViT
from .language_model import build_language_model, convert_internlm2, language_model_config

logger = logging.getLogger(__name__)

IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN = '<img>', '</img>', '<IMG_CONTEXT>'
NATIVE_PROJECTOR = {'layer_norm.': '0.', 'linear_1.': '1.', 'linear_2.': '3.'}


@dataclass
class ChatOutput:
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None


def chat_layout(config: dict, source: str) -> str:
    """'opengvlab' (remote-code InternVLChatModel) or 'transformers' (native InternVL), from config.json."""
    if 'llm_config' in config and 'vision_config' in config:
        return 'opengvlab'
    if 'text_config' in config and config.get('model_type') == 'internvl':
        return 'transformers'
    hint = ' (an InternVL-C/G checkpoint: load it with internvl.models.InternVLModel)' \
        if 'qllama_config' in config else ''
    raise CheckpointError(f'{source}: not an InternVL-Chat model folder{hint}; config.json has model_type '
                          f'{config.get("model_type")!r} and neither llm_config nor text_config')


def refuse_no_cache(generate_kwargs: dict) -> None:
    """transformers generates from ``inputs_embeds`` with its cache only (it sets ``use_cache=True``
    itself): refuse ``use_cache=False`` rather than ignore it."""
    if generate_kwargs.pop('use_cache', True) is False:
        raise ValueError('use_cache=False is not supported: transformers generates from embeddings with its '
                         'key/value cache only')


# What each layout holds besides the vision tower (a key under none of these is refused by name).
LAYOUT_PARTS = {
    'opengvlab': ('mlp1.', 'language_model.'),
    'transformers': ('multi_modal_projector.', 'model.multi_modal_projector.', 'language_model.',
                     'model.language_model.', 'lm_head.'),
}


def native_language_parts(state_dict: dict) -> tuple[dict, dict]:
    """(mlp1, language model) weights of a native folder. On disk transformers writes
    ``multi_modal_projector.*`` and ``language_model.{model,lm_head}.*``; in memory the same sit under
    ``model.`` with the language model's body at ``model.language_model.*`` and the head at ``lm_head.*``."""
    projector = take_prefix(state_dict, 'multi_modal_projector.') or take_prefix(state_dict,
                                                                                 'model.multi_modal_projector.')
    projector = {NATIVE_PROJECTOR[k.split('.', 1)[0] + '.'] + k.split('.', 1)[1]: v for k, v in projector.items()}
    llm = take_prefix(state_dict, 'language_model.')
    if not llm:
        llm = {'model.' + k: v for k, v in take_prefix(state_dict, 'model.language_model.').items()}
        llm.update({'lm_head.' + k: v for k, v in take_prefix(state_dict, 'lm_head.').items()})
    return projector, llm


def pixel_shuffle(x: torch.Tensor, scale: float, ps_version: str = 'v2') -> torch.Tensor:
    """[N, H, W, C] -> [N, H*scale, W*scale, C/scale**2] by folding neighbouring cells into channels,
    exactly as the original (v1 leaves H and W swapped)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h, int(w * scale), int(c / scale)).permute(0, 2, 1, 3)
    x = x.reshape(n, int(w * scale), int(h * scale), int(c / scale / scale))
    return x if ps_version == 'v1' else x.permute(0, 2, 1, 3).contiguous()


class InternVLChatModel(nn.Module):
    """The InternVL-Chat family (V1-5, Mini-InternVL, InternVL2/2.5/3) with the original's API.

    Args:
        vision_arch: InternViT arch (preset name or dict).
        llm_arch: language model architecture name (``language_model.ARCHITECTURES``).
        llm_config: its transformers config.
        template: conversation template name (``conversation.TEMPLATES``).
        downsample_ratio: pixel-shuffle ratio (0.5: 4 patches -> 1 token).
        ps_version: 'v1' or 'v2' pixel shuffle.
        select_layer: ViT hidden state fed to the projector (-1: last block).
        image_size: tile size (``force_image_size``; the ViT's pretraining size when None).
    """

    def __init__(self, vision_arch: str | dict, llm_arch: str, llm_config: Any, template: str = 'internlm2-chat',
                 downsample_ratio: float = 0.5, ps_version: str = 'v2', select_layer: int = -1,
                 image_size: Optional[int] = None) -> None:
        super().__init__()
        if ps_version not in ('v1', 'v2'):
            raise ValueError(f"ps_version={ps_version!r}; expected 'v1' or 'v2'")
        self.vision_model = InternViT(vision_arch)
        depth = self.vision_model.num_layers
        if not -depth - 1 <= select_layer <= depth:
            raise ValueError(f'select_layer={select_layer} is outside the {depth + 1} hidden states of the ViT')
        self.select_layer = select_layer
        self.num_vit_blocks = depth if select_layer == -1 else select_layer % (depth + 1)
        self.template = template
        self.conv_template = get_conv_template(template)
        self.system_message = self.conv_template.system_message
        self.downsample_ratio, self.ps_version = downsample_ratio, ps_version
        self.patch_size = self.vision_model.patch_size
        self.image_size = image_size or self.vision_model.arch['img_size']
        self.num_image_token = int((self.image_size // self.patch_size) ** 2 * downsample_ratio ** 2)
        vit_width = self.vision_model.embed_dims * int(1 / downsample_ratio) ** 2
        llm_width = llm_config.hidden_size
        self.mlp1 = nn.Sequential(nn.LayerNorm(vit_width), nn.Linear(vit_width, llm_width), nn.GELU(),
                                  nn.Linear(llm_width, llm_width))
        self.language_model = build_language_model(llm_arch, llm_config)
        self.llm_arch = llm_arch
        self.img_context_token_id: Optional[int] = None

    # --- loading ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, torch_dtype: Optional[torch.dtype] = None,
                        template: Optional[str] = None, **kwargs: Any) -> 'InternVLChatModel':
        """Load an OpenGVLab (remote-code layout) or transformers-native InternVL-Chat folder.

        ``torch_dtype`` (or ``dtype``) as in transformers (float32 when None). ``template`` overrides
        config.json's; a native folder names none and gets 'internvl2_5' (InternVL2.5 / 3)."""
        dtype = kwargs.pop('dtype', torch_dtype)
        kwargs.pop('trust_remote_code', None)
        kwargs.pop('low_cpu_mem_usage', None)
        if kwargs:
            raise TypeError(f'unexpected arguments: {sorted(kwargs)}')
        source = str(path)
        config, state_dict = read_model_folder(path)
        layout = chat_layout(config, source)
        vision_arch = arch_from_config(config, source)
        if layout == 'opengvlab':
            llm_arch, llm_config = language_model_config(config['llm_config'], source)
            options = dict(template=template or config.get('template') or 'internlm2-chat',
                           downsample_ratio=config.get('downsample_ratio', 0.5),
                           ps_version=config.get('ps_version', 'v1'), select_layer=config.get('select_layer', -1),
                           image_size=config.get('force_image_size') or None)
        else:
            llm_arch, llm_config = language_model_config(config['text_config'], source)
            options = dict(template=template or 'internvl2_5', downsample_ratio=config.get('downsample_ratio', 0.5),
                           ps_version='v2', select_layer=config.get('vision_feature_layer', -1))
        with on_meta():
            model = cls(vision_arch, llm_arch, llm_config, **options)
        model._load_weights(state_dict, layout, source)
        if layout == 'transformers':
            model.img_context_token_id = config.get('image_token_id')
        logger.info('%s: InternVL-Chat (%s layout), %s language model, template %s', source, layout, llm_arch,
                    model.template)
        return finish_loading(model, dtype)

    def _load_weights(self, state_dict: dict, layout: str, source: str) -> None:
        vision = to_canonical(state_dict, {}, source)
        refuse_unconsumed(vision.ignored, LAYOUT_PARTS[layout], source)
        load_canonical(self.vision_model, vision, None, source, strict=True, assign=True)
        if layout == 'opengvlab':
            projector = take_prefix(state_dict, 'mlp1.')
            llm = take_prefix(state_dict, 'language_model.')
            if self.llm_arch == 'InternLM2ForCausalLM':
                llm = convert_internlm2(llm, self.language_model.config)
        else:
            projector, llm = native_language_parts(state_dict)
        load_module(self.mlp1, projector, f'{source} (mlp1 projector)')
        tied = ('lm_head.weight',) if self.language_model.config.tie_word_embeddings else ()
        load_module(self.language_model, llm, f'{source} (language model)', allow_missing=tied)
        if tied and 'lm_head.weight' not in llm:
            self.language_model.lm_head.weight = self.language_model.get_input_embeddings().weight

    # --- features -----------------------------------------------------------------------------

    def extract_feature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Tiles [T, 3, S, S] -> image embeddings [T, num_image_token, llm width]."""
        vit = self.vision_model
        x, grid = vit.embed(pixel_values.to(vit.pos_embed.dtype))
        x = vit.run_blocks(x, grid, 0, self.num_vit_blocks)[:, vit.num_prefix_tokens:]
        x = pixel_shuffle(x.reshape(x.shape[0], *grid, -1), self.downsample_ratio, self.ps_version)
        return self.mlp1(x.reshape(x.shape[0], -1, x.shape[-1]))

    def embed_inputs(self, pixel_values: Optional[torch.Tensor], input_ids: torch.Tensor,
                     image_flags: Optional[torch.Tensor] = None,
                     visual_features: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Token embeddings [B, L, D] with the images' embeddings written over the <IMG_CONTEXT> tokens
        (``image_flags`` == 0 drops a tile's features, as in training with padded tiles)."""
        embeds = self.language_model.get_input_embeddings()(input_ids)
        if pixel_values is None and visual_features is None:
            return embeds
        if self.img_context_token_id is None:
            raise ValueError("img_context_token_id is not set: set model.img_context_token_id = "
                             "tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>') (chat() does it)")
        vit_embeds = visual_features if visual_features is not None else self.extract_feature(pixel_values)
        if image_flags is not None:
            vit_embeds = vit_embeds[image_flags.reshape(-1) == 1]
        selected = input_ids == self.img_context_token_id
        if int(selected.sum()) != vit_embeds.shape[0] * vit_embeds.shape[1]:
            raise ValueError(f'the prompt has {int(selected.sum())} <IMG_CONTEXT> tokens but the images give '
                             f'{vit_embeds.shape[0]} tiles x {vit_embeds.shape[1]} = '
                             f'{vit_embeds.shape[0] * vit_embeds.shape[1]} embeddings')
        return embeds.masked_scatter(selected.unsqueeze(-1), vit_embeds.to(embeds.dtype))

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: Optional[torch.Tensor] = None, image_flags: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None, position_ids: Optional[torch.Tensor] = None,
                **kwargs: Any) -> ChatOutput:
        """Logits [B, L, vocab] of the prompt with the images' embeddings; with ``labels`` (-100 =
        ignored) also the next-token cross-entropy, averaged over the labelled tokens."""
        embeds = self.embed_inputs(pixel_values, input_ids, image_flags)
        out = self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                                  **kwargs)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(out.logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                   ignore_index=-100)
        return ChatOutput(logits=out.logits, loss=loss)

    @torch.no_grad()
    def generate(self, pixel_values: Optional[torch.Tensor] = None, input_ids: Optional[torch.Tensor] = None,
                 attention_mask: Optional[torch.Tensor] = None, visual_features: Optional[torch.Tensor] = None,
                 generation_config: Any = None, **kwargs: Any) -> torch.Tensor:
        """Greedy / sampled / beam generation by the language model (transformers' ``generate``, which
        prompts with embeddings only through its key/value cache); returns the new tokens only."""
        refuse_no_cache(kwargs)
        embeds = self.embed_inputs(pixel_values, input_ids, visual_features=visual_features)
        return self.language_model.generate(inputs_embeds=embeds, attention_mask=attention_mask,
                                            generation_config=generation_config, **kwargs)

    # --- chat ---------------------------------------------------------------------------------

    def _prompt(self, question: str, history: list[tuple[str, str]]) -> str:
        template = get_conv_template(self.template)
        template.system_message = self.system_message
        for old_question, old_answer in history:
            template.append_message(template.roles[0], old_question)
            template.append_message(template.roles[1], old_answer)
        template.append_message(template.roles[0], question)
        template.append_message(template.roles[1], None)
        return template.get_prompt()

    def _image_tokens(self, num_patches: int) -> str:
        return IMG_START_TOKEN + IMG_CONTEXT_TOKEN * self.num_image_token * num_patches + IMG_END_TOKEN

    def _stop_token_id(self, tokenizer: Any) -> int:
        stop = self.conv_template.stop_token
        token_id = tokenizer.convert_tokens_to_ids(stop)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(f'the tokenizer has no token {stop!r}, the stop token of template {self.template!r}')
        return token_id

    def _set_image_token(self, tokenizer: Any) -> None:
        token_id = tokenizer.convert_tokens_to_ids(IMG_CONTEXT_TOKEN)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise ValueError(f'the tokenizer has no {IMG_CONTEXT_TOKEN} token: is it the chat model\'s tokenizer?')
        self.img_context_token_id = token_id

    def chat(self, tokenizer: Any, pixel_values: Optional[torch.Tensor], question: str,
             generation_config: dict, history: Optional[list] = None, return_history: bool = False,
             num_patches_list: Optional[list[int]] = None, verbose: bool = False) -> Any:
        """One round of conversation. ``<image>\\n`` is prepended in the first round when the question has
        no ``<image>``; each ``<image>`` takes the tiles of one entry of ``num_patches_list`` (default: all
        of ``pixel_values``, one image). Generation stops at the template's separator."""
        if history is None and pixel_values is not None and '<image>' not in question:
            question = '<image>\n' + question
        if num_patches_list is None:
            num_patches_list = [pixel_values.shape[0]] if pixel_values is not None else []
        if pixel_values is not None and len(pixel_values) != sum(num_patches_list):
            raise ValueError(f'num_patches_list={num_patches_list} sums to {sum(num_patches_list)} tiles, '
                             f'pixel_values has {len(pixel_values)}')
        self._set_image_token(tokenizer)
        history = [] if history is None else list(history)
        query = self._prompt(question, history)
        for num_patches in num_patches_list:
            query = query.replace('<image>', self._image_tokens(num_patches), 1)
        inputs = tokenizer(query, return_tensors='pt')
        device = self.mlp1[1].weight.device
        config = dict(generation_config, eos_token_id=self._stop_token_id(tokenizer))
        output = self.generate(pixel_values=pixel_values, input_ids=inputs['input_ids'].to(device),
                               attention_mask=inputs['attention_mask'].to(device), **config)
        response = tokenizer.batch_decode(output, skip_special_tokens=True)[0]
        response = response.split(self.conv_template.stop_token)[0].strip()
        history.append((question, response))
        if verbose:
            print(query.replace(IMG_CONTEXT_TOKEN, '').replace(IMG_START_TOKEN + IMG_END_TOKEN, '<image>'), response)
        return (response, history) if return_history else response

    def batch_chat(self, tokenizer: Any, pixel_values: Optional[torch.Tensor], questions: list[str],
                   generation_config: dict, num_patches_list: Optional[list[int]] = None,
                   image_counts: Optional[list[int]] = None, history: Any = None,
                   return_history: bool = False) -> list[str]:
        """One first-round question per image (``num_patches_list[i]`` tiles each; ``image_counts`` is its
        old name), generated as one left-padded batch."""
        if history is not None or return_history:
            raise NotImplementedError('batch_chat answers first-round questions only; use chat for history')
        if image_counts is not None:
            num_patches_list = image_counts
        if num_patches_list is None or len(num_patches_list) != len(questions):
            raise ValueError(f'batch_chat needs one entry of num_patches_list per question: '
                             f'{len(questions)} questions, num_patches_list={num_patches_list}')
        self._set_image_token(tokenizer)
        queries = []
        for question, num_patches in zip(questions, num_patches_list):
            if pixel_values is not None and '<image>' not in question:
                question = '<image>\n' + question
            queries.append(self._prompt(question, []).replace('<image>', self._image_tokens(num_patches), 1))
        side = tokenizer.padding_side
        tokenizer.padding_side = 'left'
        try:
            inputs = tokenizer(queries, return_tensors='pt', padding=True)
        finally:
            tokenizer.padding_side = side
        device = self.mlp1[1].weight.device
        config = dict(generation_config, eos_token_id=self._stop_token_id(tokenizer))
        output = self.generate(pixel_values=pixel_values, input_ids=inputs['input_ids'].to(device),
                               attention_mask=inputs['attention_mask'].to(device), **config)
        responses = tokenizer.batch_decode(output, skip_special_tokens=True)
        return [r.split(self.conv_template.stop_token)[0].strip() for r in responses]
