"""Writes of the inference app (HackSoft style: typed, keyword-only, `<entity>_<action>`).

One module per stage: imports, va, llm, similarity, batches.
"""
