"""Chat with an InternVL-Chat model about one or more images (OpenGVLab or transformers-native folder).

    python tools/chat.py MODEL --image A.jpg [--image B.jpg] [--question "Describe the image."]

With --question: one answer, printed. Without: an interactive multi-round conversation (an empty line
or Ctrl-D ends it). Each image is tiled by the dynamic preprocessing (--max-num tiles + thumbnail);
the tile layout is printed first. Several images are numbered Image-1, Image-2 in the first question.
"""
import argparse
import sys

from internvl.apis import DTYPES, USER_ERRORS, add_runtime_arguments, load_chat_model, prepare_images, start_tool
from internvl.checkpoint import CheckpointError


def first_question(question: str, num_images: int) -> str:
    if num_images < 2 or '<image>' in question:
        return question
    return ''.join(f'Image-{i + 1}: <image>\n' for i in range(num_images)) + question


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model', help='InternVL-Chat folder (config.json, weights, tokenizer)')
    parser.add_argument('--image', action='append', default=[], help='image file (repeat for several)')
    parser.add_argument('--question', help='ask this once and exit (default: interactive)')
    parser.add_argument('--max-num', type=int, default=6, help='most tiles per image (default 6)')
    parser.add_argument('--max-new-tokens', type=int, default=512)
    parser.add_argument('--template', help="conversation template (default: the model's)")
    add_runtime_arguments(parser, batch_size=False)
    args = parser.parse_args()
    start_tool()
    try:
        model, tokenizer = load_chat_model(args.model, DTYPES[args.dtype], args.device, args.template)
        pixel_values, counts, layouts = prepare_images(args.image, model.image_size, args.max_num,
                                                       DTYPES[args.dtype], args.device)
        for line in layouts:
            print(line)
        config = dict(max_new_tokens=args.max_new_tokens, do_sample=False, num_beams=1)
        history, question = None, args.question
        while True:
            if question is None:
                try:
                    question = input('you> ').strip()
                except EOFError:
                    question = ''
                if not question:
                    return 0
            if history is None:
                question = first_question(question, len(counts))
            answer, history = model.chat(tokenizer, pixel_values, question, config, history=history,
                                         return_history=True, num_patches_list=counts or None)
            print(f'assistant> {answer}', flush=True)
            if args.question is not None:
                return 0
            question = None
    except (CheckpointError, *USER_ERRORS) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
