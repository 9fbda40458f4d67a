"""Sizes of folders measured the way `du -sb` does: apparent sizes, every entry once.

`du -sb DIR` sums `st_size` of the folder itself, every sub-folder, file and symlink (the
link's own size, never its target's) and counts a hard-linked inode once. We do the same with
`os.lstat` and `os.walk(followlinks=False)`, so a symlink out of a cache is never followed.
"""

from __future__ import annotations

import os
from pathlib import Path


def dir_size(path: str | os.PathLike) -> int:
    """Apparent size of `path` and everything under it; 0 when it does not exist."""
    root = Path(path)
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return 0
    seen = {(st.st_dev, st.st_ino)}
    total = st.st_size
    if not os.path.isdir(root) or os.path.islink(root):
        return total
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:  # removed while we walked
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                total += st.st_size
    return total


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """True when `path` lies strictly below `root` (lexically, after making both absolute)."""
    p = os.path.abspath(path)
    r = os.path.abspath(root)
    return p != r and p.startswith(r.rstrip(os.sep) + os.sep)
