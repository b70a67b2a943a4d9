"""The layering of docs/architecture.md: every import points down (lazy ones inside functions
included), and nothing but ``internvl_mmlab/compat.py`` rebinds an attribute of a library."""
import ast
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = ('internvl', 'internvl_mmlab', 'mmseg_custom', 'mmdet_custom')
# module prefix -> layer; a module may import its own layer and those below it (the longest prefix wins)
LAYERS = {
    'internvl.utils': 0,
    'internvl.arch': 1, 'internvl.pos_embed': 1,
    'internvl.checkpoint': 2,
    'internvl.models': 3, 'internvl.data': 3,
    'internvl.apis': 4, 'internvl.analysis': 4,
    'internvl': 5,  # the package's __init__ (its public names) and internvl.testing
    'internvl_mmlab.errors': 10, 'internvl_mmlab.compat': 10, 'internvl_mmlab.precision': 10,
    'internvl_mmlab.engine': 11,
    'internvl_mmlab.models': 12,
    'internvl_mmlab.cli': 13,
    'internvl_mmlab.analysis': 14,
    'internvl_mmlab': 15,
    'mmseg_custom': 20, 'mmdet_custom': 20,
}
# what each package may never import, whatever the layers say
FORBIDDEN = {
    'internvl': ('mmengine', 'mmcv', 'mmseg', 'mmdet', 'deepspeed', 'internvl_mmlab', 'mmseg_custom', 'mmdet_custom'),
    'internvl_mmlab': ('mmseg', 'mmdet', 'mmseg_custom', 'mmdet_custom'),
    'mmseg_custom': ('mmdet', 'mmdet_custom'),
    'mmdet_custom': ('mmseg', 'mmseg_custom'),
}
LIBRARIES = ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmseg', 'mmdet', 'deepspeed', 'transformers',
             'safetensors', 'fvcore', 'sentencepiece', 'numpy', 'PIL')
COMPAT = 'internvl_mmlab.compat'
SETTINGS = ('torch.backends.',)  # torch's documented switches (allow_tf32, ...): set by assignment, not code


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def layer(module: str) -> Optional[int]:
    matches = [p for p in LAYERS if module == p or module.startswith(p + '.')]
    return LAYERS[max(matches, key=len)] if matches else None


def imports(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in ``source``, at any depth (function bodies included)."""
    package = module if is_package else module.rpartition('.')[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield node.lineno, target
            for alias in node.names:  # ``from pkg import submodule``
                yield node.lineno, f'{target}.{alias.name}'


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    own, problems = layer(module), []
    top = module.split('.')[0]
    for line, target in imports(source, module, is_package):
        target_top = target.split('.')[0]
        if target_top in FORBIDDEN.get(top, ()) and not (top == 'internvl' and target_top == 'internvl'):
            problems.append(f'{module}:{line} imports {target} ({top} never imports {target_top})')
            continue
        theirs = layer(target)
        if own is not None and theirs is not None and theirs > own and not target.startswith(module + '.'):
            problems.append(f'{module}:{line} imports {target}, a layer above it ({theirs} > {own})')
    return problems


def package_files() -> list[Path]:
    return sorted(p for name in OURS for p in (REPO / name).rglob('*.py'))


def test_every_import_points_down():
    problems = [v for path in package_files()
                for v in violations(path.read_text(), module_name(path), path.name == '__init__.py')]
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('source, module, expected', [
    ('def f():\n    from internvl.models import InternViT\n', 'internvl.checkpoint.loading', 'a layer above it'),
    ('from ..models.intern_vit import InternViT\n', 'internvl.checkpoint.loading', 'a layer above it'),
    ('import mmseg_custom\n', 'internvl_mmlab.analysis.flops', 'never imports mmseg_custom'),
    ('def f():\n    from mmdet.structures import DetDataSample\n', 'internvl_mmlab.cli', 'never imports mmdet'),
    ('from mmengine.config import Config\n', 'internvl.models.intern_vit', 'never imports mmengine'),
    ('from mmdet_custom.analysis import check_coco\n', 'mmseg_custom.analysis.data_check', 'never imports mmdet'),
])
def test_the_check_finds_an_upward_import(source, module, expected):
    """The checker itself: a lazy import, a relative one, one into a task package or a library, each found."""
    problems = violations(source, module)
    assert problems and expected in problems[0], problems


def library_names(tree: ast.Module) -> set[str]:
    """Names bound to a library module or to something imported from one, anywhere in the file."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split('.')[0] for a in node.names if a.name.split('.')[0] in LIBRARIES}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module.split('.')[0] in LIBRARIES:
            names |= {a.asname or a.name for a in node.names}
    return names


def rebindings(source: str) -> list[str]:
    """``lib.attr = ...``, ``LibClass.attr = ...`` and ``setattr(lib..., ...)`` in ``source``."""
    tree = ast.parse(source)
    names, found = library_names(tree), []

    def root(node: ast.AST) -> Optional[str]:
        while isinstance(node, ast.Attribute):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and root(target) in names \
                    and not ast.unparse(target).startswith(SETTINGS):
                found.append(f'line {node.lineno}: {ast.unparse(target)} = ...')
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ('setattr', 'delattr') \
                and node.args and root(node.args[0]) in names:
            found.append(f'line {node.lineno}: {ast.unparse(node)}')
    return found


def test_only_compat_rebinds_library_attributes():
    files = package_files() + sorted((REPO / 'tools').rglob('*.py'))
    found = {module_name(p): r for p in files if module_name(p) != COMPAT and (r := rebindings(p.read_text()))}
    assert not found, found
    assert rebindings('from mmengine.dist import utils\nutils._init_dist_pytorch = None\n')  # the check finds one
    assert rebindings('import torch\nsetattr(torch.nn.Linear, "forward", None)\n')


SNAPSHOT = '''
import importlib, sys
LIBRARIES = {libraries!r}
for name in ('mmengine.runner', 'mmengine.dist', 'mmengine.model', 'mmengine.optim', 'mmengine._strategy',
             'mmengine.runner.checkpoint', 'mmseg.models', 'mmdet.models', 'mmcv.ops', 'deepspeed',
             'deepspeed.utils.zero_to_fp32', 'deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine'):
    importlib.import_module(name)

def snapshot():
    seen = {{}}
    for name, module in list(sys.modules.items()):
        if module is None or name.split('.')[0] not in LIBRARIES:
            continue
        for key, value in list(vars(module).items()):
            seen[(name, key)] = id(value)
            if isinstance(value, type) and getattr(value, '__module__', None) == name:
                for attr, member in list(vars(value).items()):
                    seen[(name, f'{{key}}.{{attr}}')] = id(member)
    return seen

before = snapshot()
import internvl_mmlab, mmseg_custom, mmdet_custom  # noqa: E401
after = snapshot()
for key in sorted(k for k in before if k in after and before[k] != after[k]):
    print('CHANGED', *key)
'''


def test_importing_our_packages_changes_only_what_compat_declares():
    """At run time: of every attribute of the libraries' modules and classes, importing our packages
    changes exactly those compat's workarounds install, and the scheme table that mmengine's own
    ``CheckpointLoader.register_scheme`` rebuilds when our safe loader registers."""
    script = SNAPSHOT.format(libraries=tuple(lib for lib in LIBRARIES if lib != 'transformers'))
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    changed = {tuple(line.split()[1:]) for line in result.stdout.splitlines() if line.startswith('CHANGED')}
    assert changed == {('mmengine.dist.utils', '_init_dist_pytorch'),
                       ('mmengine._strategy.deepspeed', 'register_deepspeed_optimizers'),
                       ('mmengine.runner.checkpoint', 'CheckpointLoader._schemes')}, changed
