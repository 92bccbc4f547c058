"""Experiment configs: `get_config(arg)` in each module, every field visible.

A config builds on a sibling by importing it (`from configs import testbed`);
the launch commands take a config by path (`--config configs/testbed.py:runlocal`),
and a path under configs/ that does not exist where the command runs is read from
the installed package (`launch.cli.resolve_config_path`).
"""
