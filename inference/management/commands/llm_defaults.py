from __future__ import annotations

from django.core.management.base import BaseCommand

from inference.services.llm import llm_config_defaults_ensure, prompt_defaults_ensure


class Command(BaseCommand):
    help = ("Create the default prompts (categorize-basic[-words], categorize-emotic[-words], describe[-words]) "
            "and LLM configs (smollm2-gguf, lexicon-warriner). Safe to re-run: existing rows are left alone.")

    def handle(self, *args, **options) -> None:
        prompts = prompt_defaults_ensure()
        configs = llm_config_defaults_ensure()
        for prompt in prompts:
            self.stdout.write(f"  prompt {prompt.task}/{prompt.name}@{prompt.version} ({prompt.va_format})")
        for config in configs:
            self.stdout.write(f"  config {config.name} ({config.backend})")
        self.stdout.write(f"{len(prompts)} prompt(s), {len(configs)} LLM config(s) ready")
