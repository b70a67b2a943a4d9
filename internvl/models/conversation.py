"""Conversation templates of the published InternVL-Chat checkpoints (the ``template`` of config.json).

All of them use the MPT separator style of FastChat, which the original ``conversation.py`` uses for
InternVL: the prompt is ``system_template.format(system_message) + sep``, then for every message
``role + message + sep``, and for the final, open assistant turn just ``role``. Generation stops at the
separator token (``sep.strip()``), not at the tokenizer's eos.
"""
import copy
from dataclasses import dataclass, field
from typing import Optional

INTERNVL_SYSTEM = ('你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, '
                   '是一个有用无害的人工智能助手。')
INTERNVL2_5_SYSTEM = '你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。'
CHATML_ROLES = ('<|im_start|>user\n', '<|im_start|>assistant\n')


@dataclass
class Conversation:
    name: str
    system_template: str
    system_message: str
    roles: tuple[str, str]
    sep: str
    messages: list[list[Optional[str]]] = field(default_factory=list)

    def append_message(self, role: str, message: Optional[str]) -> None:
        self.messages.append([role, message])

    def get_prompt(self) -> str:
        prompt = self.system_template.format(system_message=self.system_message) + self.sep
        for role, message in self.messages:
            prompt += role + message + self.sep if message else role
        return prompt

    @property
    def stop_token(self) -> str:
        """The token generation stops at: the separator without surrounding whitespace."""
        return self.sep.strip()

    def copy(self) -> 'Conversation':
        return copy.deepcopy(self)


# template name -> the published checkpoints that use it
TEMPLATES: dict[str, Conversation] = {t.name: t for t in [
    # InternVL-Chat-V1-5, Mini-InternVL-Chat-2B-V1-5, InternVL2-2B/8B/26B (InternLM2 language models)
    Conversation('internlm2-chat', '<|im_start|>system\n{system_message}', INTERNVL_SYSTEM, CHATML_ROLES, '<|im_end|>'),
    # InternVL-Chat-V1-2(-Plus), InternVL2-1B/40B/76B (Nous-Hermes-2 Yi-34B, Qwen2 and Llama-3 models)
    Conversation('Hermes-2', '<|im_start|>system\n{system_message}', INTERNVL_SYSTEM, CHATML_ROLES, '<|im_end|>'),
    # Mini-InternVL-Chat-4B-V1-5, InternVL2-4B (Phi-3)
    Conversation('phi3-chat', '<|system|>\n{system_message}', INTERNVL_SYSTEM, ('<|user|>\n', '<|assistant|>\n'),
                 '<|end|>'),
    # InternVL2.5, InternVL3 (and their transformers-native "-hf" folders)
    Conversation('internvl2_5', '<|im_start|>system\n{system_message}', INTERNVL2_5_SYSTEM, CHATML_ROLES,
                 '<|im_end|>\n'),
]}


def get_conv_template(name: str) -> Conversation:
    """A fresh copy of the template ``name``; an unknown name is an error listing the known ones."""
    if name not in TEMPLATES:
        raise ValueError(f'unknown conversation template {name!r}; known templates: {sorted(TEMPLATES)}')
    return TEMPLATES[name].copy()
