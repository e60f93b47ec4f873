"""What benchmarks/rl.py says beside its tables: the runs of earlier days it cites and
how the example's exploit was chosen, measured, in words."""

from __future__ import annotations

# how the example's exploit was chosen: Acrobot, 15 steps, populace.run on the example with
# its exploit replaced, the same seeds, the local executor with 2 workers, 2026-12-06
CHOICE = {"Acrobot-v1": (
    "How the exploit was chosen (2026-12-06: `populace.run` on the example with its exploit "
    "replaced, seeds 0 to 4, the local executor with 2 workers; best member and median "
    "member, median [min, max] over seeds, and copies in 5 runs): t-test at p < 0.3, "
    "-106.7 [-128.1, -90.5] and -239.8 [-429.4, -126.6], 14 copies; tournament, -106.4 "
    "[-135.0, -90.5] and -142.3 [-208.9, -118.7], 49; truncation 0.25 (Ray Tune's "
    "default), -99.9 [-128.1, -80.2] and -130.0 [-170.2, -94.3], 47; truncation 0.5, -99.7 "
    "[-118.9, -83.9] and -120.6 [-162.5, -106.8], 83 (over seeds 0 to 9: -92.2 and -109.0); "
    "truncation 0.5 with no exploit before step 6 (`burn_in: 6`, so no decision while "
    "every score sits at -500), -92.0 [-128.1, -83.2] and -125.2 [-169.8, -92.0], 63. "
    "Truncation 0.5 is the example's exploit now. These runs are asynchronous, so a seed "
    "run twice differs: truncation 0.5 gave seed 2 -118.9 / -162.5 there, -110.8 / -164.7 "
    "in an earlier benchmark that day and -164.0 / -222.4 in a later one (8 seeds, before "
    "the discount and lambda moved by noise). "
    "Seed 2 is where populace trails Ray most, and it shows how: at step 3 seven of the 8 "
    "members scored -500 (no episode reached the goal) and member 5 -489 (one lucky "
    "episode); member 7, whose hparams learn fastest (-249 at step 6 and -120 at the end "
    "under random search), tied the others, ties go by member id, the highest last, so it "
    "was in the bottom half and copied member 5, and its hparams were gone. Ray's PBT "
    "sorts tied trials in the order it made them, the first lowest, so in its run of seed "
    "2 trial 0 copied trial 7 at step 3, not the reverse. With ties broken the other way "
    "(the highest id first: a check of the cause, not a rule, as no order of ids is "
    "right) populace's seed 2 ended at -99.4 / -122.4. "
    "A truncation that takes a tie for no evidence did worse (2026-12-06, seeds 0 to 4, "
    "the same way: a member copies only when its score is strictly below the worst of "
    "the top half, so nobody copies while the members tie at -500): best member -104.8 "
    "[-120.3, -92.5], median member -159.4 [-267.1, -112.2], 34 copies in 5 runs. It "
    "blocks the copies that matter as well: in seed 2 member 7 scored -249 at step 6 and "
    "-159 at step 9, but five members still sat at -500, so the fourth best was -500, "
    "every member at the floor tied it, and nobody copied member 7 before step 12 (median "
    "member -267). On the PBT paper's toy (examples/toy.py) its two mirror-image members "
    "tie at every ready point, so that rule never copies there and PBT ends at grid "
    "search's Q = 0.39. Truncation breaks ties by member id, as before. "
    "Ray's runs of the same seeds move as much from one benchmark to the next: median "
    "member, as Ray reports it, -119.8 [-131.1, -97.4] over seeds 0 to 2 on 2026-12-01 "
    "and -107.0 [-149.6, -103.6] in an earlier benchmark of 2026-12-06; seed 0 alone "
    "-149.6 then and -102.8 in a later one (8 seeds). "
    "How the discount and GAE's lambda came to move by added noise (2026-12-06, "
    "`populace.run` on the example, Acrobot, seeds 8 to 15, the local executor with 2 "
    "workers; the table's seeds 8 to 15 are the same seeds run again, so seeds 0 to 7 are "
    "the ones this choice never saw): perturbed by a factor, as every other "
    "hparam, a discount of 0.99 times 0.8 or 1.2 leaves [0.95, 0.999] and is clipped to a "
    "bound, and so does a lambda of 0.95 in [0.8, 0.99]: 79 of the 64 members' 128 final "
    "discount and lambda values sat at a bound. With noise of standard deviation 0.01 and "
    "0.03 (a fifth of each range) 36 did, the best member's median went from -96.4 to "
    "-87.5 and the median member's from -111.2 to -109.6, each ahead in 5 seeds of 8: a "
    "lean gain, kept because a rule that pins two hparams to their bounds searches "
    "nothing. The copies made at step 12 ended level with their donors either way "
    "(median difference 0.4 and 2.7), so explore does not cost a late copy its score. "
    "Ray Tune's PBT perturbs the two by a factor and the benchmark clips them, as before. "
    "CartPole's tables above were measured before the rule (its PBT median member was at "
    "the ceiling of 500 in every seed then). The records of this table's runs are kept in "
    "benchmarks/rl_records.json, every figure of the tables with them (the stores, which "
    "the schedule's plot reads, are not).")}


# the example's t-test exploit (window 4, p < 0.05), which it used until 2026-12-06, in
# this benchmark on 2026-12-01 (the same members and seeds)
BEFORE = {
    "CartPole-v1": (
        "Until 2026-12-06 the example used the paper's t-test exploit (Welch's test on the "
        "last 4 ready-point scores, p < 0.05): on CartPole it made 33 copies in 5 runs and "
        "its median member ended at 500.0 [165.8, 500.0]. "),
    "Acrobot-v1": (
        "Until 2026-12-06 the example used the paper's t-test exploit (Welch's test on the "
        "last 4 ready-point scores, p < 0.05): on Acrobot it made 0 copies in 5 runs, so "
        "PBT was random search exactly (best member -120.3, median member -373.1); at "
        "p < 0.3 (tried on 2026-12-06, the same seeds) it made 14 copies in 5 runs, its "
        "median member at -240 [-429, -127]. "),
}
WHY_TRUNCATION = (
    "A run has 5 (Acrobot) or 10 (CartPole) ready points, so the test reads 2 to 4 "
    "ready-point scores a member, and on a rising learning curve their spread is mostly "
    "the trend, not noise: a rival passes when it is far ahead and steady (CartPole's "
    "500s), and on Acrobot, where every member climbs from -500, none did (a member at "
    "-500 four times against one at -500, -249, -159, -112, seed 2's fastest learner under "
    "random search: p = 0.066). Truncation asks "
    "for no "
    "evidence, and on a short budget it need not: a member at the bottom early on is one "
    "whose hparams are not learning (Acrobot's -500 is a policy that never reaches the "
    "goal), and a wrong copy costs a member a few steps of a short run.")
