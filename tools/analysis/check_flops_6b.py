"""The FLOPs of the InternViT-6B presets at 224, 448 and 504 px, counted three ways side by side: fvcore
with our attention handle (on storage never written, so without the 22 GiB of fp32 weights), the
analytic count of the ViT, and torch's FlopCounterMode (halved to fvcore's convention). Output:
docs/flops_6b.txt.

    python tools/analysis/check_flops_6b.py
"""
import time

import torch

from internvl.models import build_on_meta
from internvl.analysis.flops import flop_analysis, torch_flops, vit_flops, without_weights

CASES = (('internvit-6b-224px', 224), ('internvit-6b-448px', 448), ('internvit-6b-448px', 504))


def main() -> None:
    for arch, size in CASES:
        start = time.time()
        model = build_on_meta(arch)
        by_torch = torch_flops(model, (torch.empty(1, 3, size, size, device='meta'),))
        model = without_weights(model)
        by_fvcore = flop_analysis(model, (torch.zeros(1, 3, size, size),)).total()
        analytic = vit_flops(model.arch, size, size)
        print(f'{arch} at {size}px: fvcore {by_fvcore / 1e9:.2f} G, analytic {analytic / 1e9:.2f} G, '
              f'FlopCounterMode/2 {by_torch / 1e9:.2f} G; fvcore/analytic {by_fvcore / analytic:.6f}, '
              f'torch/analytic {by_torch / analytic:.6f} ({time.time() - start:.0f} s)', flush=True)


if __name__ == '__main__':
    main()
