# Copyright (c) mmtfclip contributors. All rights reserved.
from .ranking import ranking_from_dump, render_ranking

__all__ = ['render_ranking', 'ranking_from_dump']
