"""Writes of the annotations app (HackSoft style: typed, keyword-only, `<entity>_<action>`).

studies: create a study from Generations, check items, open/close. annotators: join and consent.
ratings: submit a rating, apply attention checks and exclusion rules.
"""
