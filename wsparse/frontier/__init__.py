"""The sparse-vs-dense frontier experiment (issue 14; the paper's Figures 2 and 3): a grid of sparse and dense
members, each an ordinary run directory made by the repository's own stages, collected into ``frontier.json``.

``grid`` expands a spec into members, ``stages`` runs one member (lr sweep, training, tasks, circuits) and the
Figure 2 targets, ``aggregate`` computes the headline and its matched-loss interpolation, ``plots`` draws the figures
and index.html, ``pipeline`` chains them.
"""

from wsparse.frontier.grid import Frontier, Member, expand

__all__ = ["Frontier", "Member", "expand"]
