"""`python -m training retrain`: the service's recorded events back into the model, through a
gate that never publishes a worse one (docs/training.md, Retrain).

    command.py   one cycle: export, fit, judge, gate, publish; its folder and verdict
    judge.py     the newest events neither model was fitted on, scored through each bundle
    gate.py      the paired comparison and the verdict
    schedule.py  `--every`: cycles forever, each logged, none fatal
"""
