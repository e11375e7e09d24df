"""The network one step past candidates: what a rule that plans the next character (a rhyme,
a line break) weighs candidates by. `Lookahead.at(state)` is the view a step's processors get
(StepContext.ahead); the step after the draw reuses what a look already computed."""

from __future__ import annotations

import torch

SEQ_CHUNK = 2048  # sequences a rule scores in one batch (Lookahead.sequences)


class LookaheadView:
    """Lookahead from one step's state (the processor.Ahead interface)."""

    def __init__(self, look: Lookahead, state: list) -> None:
        self.look, self.state = look, state

    def mass(self, cands: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        return self.look.mass(cands, allowed, self.state)

    def rows(self, rows: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.look.rows(rows, ids, self.state)

    def sequences(self, row: int, seqs: list[list[int]]) -> torch.Tensor:
        return self.look.sequences(row, seqs, self.state)


class Lookahead:
    """The network's distribution one step past each of K candidates, from the current state:
    what a rule that plans the next character (a rhyme, a line break) weighs candidates by.
    The count model is left out here: over B*K contexts it tripled the cost of a form
    (benchmarks/form.py) for a perplexity 2 % lower."""

    def __init__(self, stepper) -> None:
        self.stepper = stepper
        self._ahead: tuple | None = None  # the last mass(): (state, cands, logits, states)

    def at(self, state: list) -> LookaheadView:
        """The view a step's processors look ahead through, from `state`."""
        return LookaheadView(self, state)

    def step(self, ids: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """stepper.step(ids (B,), state) -> (B, V) logits and the next states, read from the
        look ahead when it already took this step: when mass() ran from `state` and every
        row's id was one of its candidates (a tonal form looks ahead before most of its
        characters, and the step it then takes is one it has already computed)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] is state:
            _, cands, logits, states = ahead
            hit = cands == ids[:, None].to(cands.device)  # (B, K)
            if bool(hit.any(dim=1).all()):
                rows = torch.arange(len(ids), device=cands.device) * cands.shape[1]
                rows = rows + hit.int().argmax(dim=1)  # (B,) the row of each id's candidate
                return logits[rows], [tuple(t[rows] for t in s) for s in states]
        return self.stepper.step(ids, state)

    def mass(self, cands: torch.Tensor, allowed: torch.Tensor, state: list) -> torch.Tensor:
        """cands (B, K) ids, allowed (B, V) bool -> (B, K) log-probability that the character
        after each candidate is one its row allows. The allowed share of exp(logits) is one
        matrix product: no (B, K, V) log-softmax or masked copy (a tonal form asks this at
        most of its slots, where those were half its wall time)."""
        b, k = cands.shape
        wide = [tuple(t.repeat_interleave(k, dim=0) for t in s) for s in state]  # (B*K, H)
        flat, states = self.stepper.step(cands.reshape(-1), wide)  # (B*K, V)
        self._ahead = (state, cands, flat, states)  # the step after the draw, if a candidate
        # one fused softmax: a quarter of the time of exp(logits - max) / sum taken apart
        probs = torch.softmax(flat.float().view(b, k, -1), dim=2)  # (B, K, V)
        part = torch.bmm(probs, allowed.to(probs.dtype)[:, :, None].to(probs.device))  # (B, K, 1)
        # -inf where nothing allowed is left (or all of it under e^-87 of the likeliest)
        return torch.log(part.squeeze(2))

    def rows(self, rows: torch.Tensor, ids: torch.Tensor, state: list) -> torch.Tensor:
        """rows (P,) and ids (P,) -> (P, V) log-probs of the next character after writing
        ids[p] on row rows[p]: a look past only the candidates a rule needs."""
        at = rows.to(state[0][0].device)
        picked = [tuple(t[at] for t in s) for s in state]  # (P, H) each
        logits, _ = self.stepper.step(ids.to(at.device), picked)  # (P, V)
        return torch.log_softmax(logits.float(), dim=-1)

    def sequences(self, row: int, seqs: list[list[int]], state: list) -> torch.Tensor:
        """(W,) log-probs of each id sequence's second id onwards, from row `row`'s state with
        its first id written (the caller has the first one's probability). How a rule weighs
        whole words: a rhyme, and the line break after it. In chunks of SEQ_CHUNK rows."""
        out = []
        for at in range(0, len(seqs), SEQ_CHUNK):
            chunk = seqs[at : at + SEQ_CHUNK]
            width = max(len(q) for q in chunk)
            ids = torch.tensor([q + [-1] * (width - len(q)) for q in chunk])  # (W, L), -1 pad
            st = [tuple(t[row : row + 1].expand(len(chunk), -1) for t in s) for s in state]
            total = torch.zeros(len(chunk), dtype=torch.float64)
            for j in range(width - 1):
                logits, st = self.stepper.step(ids[:, j].clamp_min(0), st)  # (W, V)
                nxt = ids[:, j + 1]  # (W,)
                lp = torch.log_softmax(logits.float(), dim=-1).gather(1, nxt.clamp_min(0)[:, None])
                total += torch.where(nxt >= 0, lp.squeeze(1).double(), 0.0)
            out.append(total)
        return torch.cat(out)
