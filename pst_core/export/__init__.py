"""`pst export`: a trained run as a standard model folder that answers first in any server.

A PST or Post-Thinking student writes its answer, `<|sem|>`, then a rationale; `pst eval` stops it
at `<|sem|>`, and that stop is where its latency advantage lies. A bare `save_pretrained` folder
does not carry that rule, so every other server would let the student ramble on. The export does:
its `generation_config.json` lists SEM (and EOS) as end-of-sequence tokens, which transformers'
`generate`/`pipeline` and vLLM read by default; the tokenizer keeps SEP/SEM and gets a chat
template that renders a user's question as the prompt the run was trained on; the README model
card states the task, teacher, strategy, metrics and the inference rule, with one-line
equivalents for other servers. `folder` writes it, `card` words the card, `hub` uploads it.
"""

from pst_core.export.folder import (
    ExportResult,
    export_run,
    generation_settings,
    prompt_template,
)
from pst_core.export.hub import push

__all__ = ["ExportResult", "export_run", "generation_settings", "prompt_template", "push"]
