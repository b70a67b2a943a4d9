"""Benchmark InternVL-Chat on this machine, every figure measured side by side in one run (interleaved
runs, medians, fp32, a random model of a tiny-but-not-trivial shape built locally):

1. ``batch_chat`` over 8 single-tile images against 8 ``chat`` calls, the same greedy answer length
   (min = max new tokens): time per image (target: batch >= 2x);
2. ``generate`` (transformers', with the key/value cache) against greedy decoding without a cache (the
   whole sequence recomputed at every step, as a plain loop here: transformers always caches when
   prompted with embeddings); the two must give the same tokens;
3. our chat forward against transformers' ``InternVLForConditionalGeneration`` with the same weights
   (a transformers-native folder loaded by both): one prompt with a tile (target: ours >= 1.0x).

    python tools/analysis/benchmark_chat.py [--vision-width 256 --vision-depth 6 --llm-width 512
        --llm-depth 6 --tile 224 --new-tokens 32 --repeats 3]
"""
import argparse
import os
import tempfile

import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from internvl.models import InternVLChatModel, load_tokenizer  # noqa: E402
from internvl.models.linear import set_cpu_linear_backend  # noqa: E402
from internvl.testing import make_native_chat_folder  # noqa: E402
from internvl.analysis.profiling import interleaved_times, median  # noqa: E402


def report(times: dict, baseline: str, candidate: str, per: int, unit: str) -> None:
    base, cand = median(times[baseline]) / per, median(times[candidate]) / per
    print(f'  {baseline:<34} {1000 * base:9.1f} ms/{unit}')
    print(f'  {candidate:<34} {1000 * cand:9.1f} ms/{unit}   ({base / cand:.2f}x)')


@torch.no_grad()
def greedy_without_cache(model: InternVLChatModel, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                         steps: int) -> list[int]:
    embeds = model.embed_inputs(pixel_values, input_ids)
    tokens = []
    for _ in range(steps):
        tokens.append(int(model.language_model(inputs_embeds=embeds).logits[0, -1].argmax()))
        next_embed = model.language_model.get_input_embeddings()(torch.tensor([tokens[-1:]]))
        embeds = torch.cat([embeds, next_embed], dim=1)
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--vision-width', type=int, default=256)
    parser.add_argument('--vision-depth', type=int, default=6)
    parser.add_argument('--llm-width', type=int, default=512)
    parser.add_argument('--llm-depth', type=int, default=6)
    parser.add_argument('--tile', type=int, default=224)
    parser.add_argument('--new-tokens', type=int, default=32)
    parser.add_argument('--images', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    set_cpu_linear_backend()  # the CPU inference back-end, as every tool chooses it (INTERNVL_CPU_LINEAR)
    vision = dict(hidden_size=args.vision_width, num_hidden_layers=args.vision_depth, num_attention_heads=8,
                  intermediate_size=4 * args.vision_width, image_size=args.tile, patch_size=14)
    folder = tempfile.mkdtemp(prefix='benchmark-chat-')
    reference = make_native_chat_folder(folder, llm='qwen2', hidden=args.llm_width, layers=args.llm_depth,
                                        vision=vision)
    model = InternVLChatModel.from_pretrained(folder)
    tokenizer = load_tokenizer(folder)
    model.img_context_token_id = tokenizer.convert_tokens_to_ids('<IMG_CONTEXT>')
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, fp32; InternViT width {args.vision_width} '
          f'depth {args.vision_depth}, tile {args.tile} ({model.num_image_token} tokens/tile); Qwen2 width '
          f'{args.llm_width} depth {args.llm_depth}; {args.new_tokens} new tokens per answer')
    torch.manual_seed(0)
    pixel_values = torch.randn(args.images, 3, args.tile, args.tile)
    question = 'describe the image in detail'
    config = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)

    def sequential() -> None:
        for i in range(args.images):
            model.chat(tokenizer, pixel_values[i:i + 1], question, dict(config))

    def batched() -> None:
        model.batch_chat(tokenizer, pixel_values, [question] * args.images, dict(config),
                         num_patches_list=[1] * args.images)
    print(f'1. {args.images} images, one question each')
    times = interleaved_times({f'{args.images} x chat': sequential, 'batch_chat': batched}, args.repeats)
    report(times, f'{args.images} x chat', 'batch_chat', args.images, 'image')

    one = pixel_values[:1]
    query = ('<|im_start|>user\n<img>' + '<IMG_CONTEXT>' * model.num_image_token + f'</img>\n{question}<|im_end|>\n'
             '<|im_start|>assistant\n')
    inputs = tokenizer(query, return_tensors='pt')
    print(f'2. greedy generation of {args.new_tokens} tokens')
    cached = model.generate(one, inputs.input_ids, inputs.attention_mask, **config)[0].tolist()
    print(f'  same tokens with and without the cache: {cached == greedy_without_cache(model, one, inputs.input_ids, args.new_tokens)}')
    times = interleaved_times({
        'without key/value cache': lambda: greedy_without_cache(model, one, inputs.input_ids, args.new_tokens),
        'with key/value cache (generate)': lambda: model.generate(one, inputs.input_ids, inputs.attention_mask,
                                                                  **config)}, args.repeats)
    report(times, 'without key/value cache', 'with key/value cache (generate)', 1, 'answer')

    print(f'3. forward of one prompt ({inputs.input_ids.shape[1]} tokens, one tile)')
    times = interleaved_times({
        "transformers' InternVLForConditionalGeneration": lambda: reference(
            input_ids=inputs.input_ids, pixel_values=one, attention_mask=inputs.attention_mask),
        'InternVLChatModel (ours)': lambda: model(one, inputs.input_ids, inputs.attention_mask)},
        args.repeats * 3)
    report(times, "transformers' InternVLForConditionalGeneration", 'InternVLChatModel (ours)', 1, 'forward')


if __name__ == '__main__':
    main()
