# Every judged verdict on one figure: the select-then-judge sweeps, each activation at the rate its
# selection seeds chose, judged by held-out seeds on the whole validation split, against parameter
# count, a series per corpus and tokenizer. Sweeps not run yet are named in the study and left out.
# python study.py config/study_verdicts.py   (after the sweeps below; each has its own report)
name = "study_verdicts"
sizes = ["config/sweep_verdict_base_cpu.py", "config/sweep_verdict_large_cpu.py", "config/sweep_verdict_prose_cpu.py",
         "config/sweep_verdict_baby_gpu.py", "config/sweep_verdict_literature_gpu.py"]
