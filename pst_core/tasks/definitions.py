"""The 15 tasks: Fine-tune-CoT's 12 and Distilling Step-by-Step's 3. A new task is one `add` call.

Source indices (hence example ids `<task>-<index:05d>`): Fine-tune-CoT's `sample_index` for its
12 tasks, so its recorded teacher completions align by index; for the DSbS tasks the row of the
train file, then the test (and validation) files after it, as Hugging Face orders them.
Each entry also names its recorded teacher outputs (`recorded=`, see `RecordedLayout`): a task in
Distilling Step-by-Step's layout with PaLM rationales, e.g. e-SNLI, is one entry like `anli1`'s.
"""

from __future__ import annotations

from functools import partial

from pst_core.registry import Registry
from pst_core.tasks import generators, hub, loaders
from pst_core.tasks.spec import RecordedLayout, TaskSpec

TASKS: Registry[TaskSpec] = Registry("task")


def add(spec: TaskSpec) -> TaskSpec:
    """Register a task under its name."""
    return TASKS.add(spec.name, spec)


COMPLETIONS = "reasoning_teacher/completion_data/B_text-davinci-002__C_zs_cot"
ZERO_SHOT_LOGS = "zero_shot_cot/text-davinci-002_zero_shot_cot"


def davinci(name: str, completion_data: bool = True) -> tuple[RecordedLayout, ...]:
    """text-davinci-002 Zero-shot-CoT outputs: Fine-tune-CoT's completions (if any), then Kojima's log."""
    log = RecordedLayout("text-davinci-002", "zero_shot_log", f"{ZERO_SHOT_LOGS}/{name}.jsonl")
    if not completion_data:  # gsm8k, aqua and commonsense_qa: the mirror lacks their completion files
        return (log,)
    return (RecordedLayout("text-davinci-002", "completion_data", f"{COMPLETIONS}/D_{name}.json"), log)


def palm(ds: str, splits: tuple[str, ...], chunk_rows: int, next_example: str, lead_in: str, answer: str,
         first_index: dict[str, int] | None = None) -> RecordedLayout:
    """PaLM-540B few-shot CoT outputs in Distilling Step-by-Step's `<ds>/llm/<split>_CoT_<k>.json` chunks."""
    return RecordedLayout("palm-540b", "dsbs", f"distilling_step_by_step/{ds}/llm", splits, chunk_rows,
                          next_example, lead_in, answer, first_index or {})


ZS = "zero_shot_cot/dataset"
add(TaskSpec("single_eq", "number", partial(loaders.math_equations, relative=f"{ZS}/SingleEq/questions.json"),
             description="SingleEq arithmetic word problems", recorded=davinci("single_eq")))
add(TaskSpec("addsub", "number", partial(loaders.math_equations, relative=f"{ZS}/AddSub/AddSub.json"),
             description="AddSub addition/subtraction word problems", recorded=davinci("addsub")))
add(TaskSpec("multiarith", "number", partial(loaders.math_equations, relative=f"{ZS}/MultiArith/MultiArith.json"),
             description="MultiArith multi-step arithmetic", recorded=davinci("multiarith")))
add(TaskSpec("gsm8k", "number", loaders.gsm8k, hub.gsm8k, "openai/gsm8k", "main",
             description="GSM8K grade-school maths; human solutions as rationales",
             recorded=davinci("gsm8k", completion_data=False)))
add(TaskSpec("aqua", "choice", loaders.aqua, hub.aqua, "deepmind/aqua_rat", "raw",
             description="AQuA-RAT algebra, 5 choices; human rationales",
             missing_note={"train": "AQuA train is not in the offline copy; use --source hub"},
             recorded=davinci("aqua", completion_data=False)))
add(TaskSpec("svamp", "number", loaders.svamp, description="SVAMP arithmetic with varied structure", recorded=davinci("svamp")))
add(TaskSpec("date_understanding", "choice", loaders.date_understanding,
             description="BIG-bench date understanding, 6 choices", recorded=davinci("date_understanding")))
add(TaskSpec("tracking_shuffled_objects", "choice", loaders.tracking_shuffled_objects,
             description="BIG-bench tracking three shuffled objects, 3 choices",
             recorded=davinci("tracking_shuffled_objects")))
add(TaskSpec("last_letter_concatenation", "text",
             partial(loaders.simple_examples, relative=f"{ZS}/last_letters/last_letters.json"),
             generator=generators.last_letter_concatenation, description="concatenate last letters of 4 names",
             recorded=davinci("last_letter_concatenation")))
add(TaskSpec("coin_flip", "yes_no", partial(loaders.simple_examples, relative=f"{ZS}/coin_flip/coin_flip.json"),
             generator=generators.coin_flip, description="is the coin still heads up after 4 people",
             recorded=davinci("coin_flip")))
add(TaskSpec("commonsense_qa", "choice", loaders.commonsense_qa, hub.commonsense_qa, "tau/commonsense_qa",
             description="CommonsenseQA, 5 choices",
             recorded=davinci("commonsense_qa", completion_data=False)))
add(TaskSpec("strategy_qa", "yes_no", loaders.strategy_qa, description="StrategyQA implicit multi-hop yes/no; facts",
             recorded=davinci("strategy_qa")))

DSBS_ORDER = {"train": 0, "valid": loaders.ANLI_R1_TRAIN_SIZE, "test": loaders.ANLI_R1_TRAIN_SIZE + 1000}
add(TaskSpec("cqa", "choice", partial(loaders.dsbs_files, ds="cqa", splits=("train", "test"), make=loaders.cqa_record),
             hub.cqa, "cos_e", "v1.11", family="dsbs", description="CoS-E v1.11 (CommonsenseQA + explanations)",
             recorded=palm("cqa", ("train", "test"), 1000, "Q:", "So the answer is", "letter")))
add(TaskSpec("svamp_dsbs", "number",
             partial(loaders.dsbs_files, ds="svamp", splits=("train", "test"), make=loaders.svamp_dsbs_record),
             family="dsbs", description="SVAMP with Distilling Step-by-Step's 800/200 split",
             recorded=palm("svamp", ("train", "test"), 500, "Q:", "The answer is", "arithmetic")))
add(TaskSpec("anli1", "choice",
             partial(loaders.dsbs_files, ds="anli1", splits=("valid", "test"), make=loaders.anli_record,
                     first_index=DSBS_ORDER),
             hub.anli1, "facebook/anli", family="dsbs", description="ANLI round 1, 3 labels; annotator reasons",
             missing_note={"train": "ANLI-R1 train inputs are not in the offline copy; use --source hub"},
             recorded=palm("anli1", ("train", "valid", "test"), 5000, "Premise:", "So the answer is", "label", DSBS_ORDER)))
