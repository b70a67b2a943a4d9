"""Chat with an InternVL-Chat model about one or more images (OpenGVLab or transformers-native folder).

    python tools/chat.py MODEL --image A.jpg [--image B.jpg] [--question "Describe the image."]

With --question: one answer, printed as it is generated. Without: an interactive multi-round
conversation with line editing and history; an empty line or Ctrl-D ends it, Ctrl-C stops an answer.
Each image is tiled by the dynamic preprocessing (--max-num tiles + thumbnail); the tile layout is
printed first. Several images are numbered Image-1, Image-2 in the first question. Every argument and
file is checked before the weights load.
"""
import argparse
import sys

from internvl.apis import (DTYPES, USER_ERRORS, add_runtime_arguments, check_at_least, check_images,
                           check_model_folder, check_runtime_arguments, load_chat_model, prepare_images, start_tool)
from internvl.apis.chat import converse, first_question
from internvl.checkpoint import CheckpointError
from internvl.models import TEMPLATES, get_conv_template


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model', help='InternVL-Chat folder (config.json, weights, tokenizer)')
    parser.add_argument('--image', action='append', default=[], help='image file (repeat for several)')
    parser.add_argument('--question', help='ask this once and exit (default: interactive)')
    parser.add_argument('--max-num', type=int, default=6, help='most tiles per image (default 6)')
    parser.add_argument('--max-new-tokens', type=int, default=512)
    parser.add_argument('--template', help=f"conversation template (default: the model's; one of {sorted(TEMPLATES)})")
    add_runtime_arguments(parser, batch_size=False)
    args = parser.parse_args()
    start_tool()
    try:
        check_model_folder(args.model, 'InternVL-Chat')
        check_runtime_arguments(args)
        check_at_least('--max-num', args.max_num)
        check_at_least('--max-new-tokens', args.max_new_tokens)
        check_images(args.image)
        if args.template is not None:
            get_conv_template(args.template)  # an unknown name lists the known ones
        model, tokenizer = load_chat_model(args.model, DTYPES[args.dtype], args.device, args.template)
        pixel_values, counts, layouts = prepare_images(args.image, model.image_size, args.max_num,
                                                       DTYPES[args.dtype], args.device)
    except (CheckpointError, *USER_ERRORS) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    for line in layouts:
        print(line)
    if args.question is None:
        import readline  # noqa: F401  (line editing and history for input())
    from transformers import TextStreamer
    config = dict(max_new_tokens=args.max_new_tokens, do_sample=False, num_beams=1,
                  streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True))

    def answer(question: str, history):
        print('assistant> ', end='', flush=True)
        if history is None:
            question = first_question(question, len(counts))
        return model.chat(tokenizer, pixel_values, question, config, history=history, return_history=True,
                          num_patches_list=counts or None)

    try:
        converse(answer, lambda: input('you> '), print, args.question)
    except (CheckpointError, *USER_ERRORS) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
