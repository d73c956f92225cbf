"""The pieces every entry point shares: stop signals, exit statuses, the default output directory."""

from __future__ import annotations

import os
import signal

import pytest

from purejax_ad import control, run, sac
from purejax_ad.config import Config
from purejax_ad.sac import SACConfig


def test_stop_signals_record_the_signal_and_restore_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with control.StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.received == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_signals_can_raise_in_the_main_thread():
    with pytest.raises(control.Stopped, match="SIGINT"):
        with control.StopSignals(raise_in_main=True):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_both_entry_points_share_the_exit_statuses_and_the_output_directory_pattern():
    assert (run.EXIT_OK, run.EXIT_BAD_INPUT, run.EXIT_STOPPED, run.EXIT_NONFINITE) == (0, 2, 3, 4)
    assert (sac.EXIT_OK, sac.EXIT_BAD_INPUT, sac.EXIT_STOPPED) == (0, 2, 3)
    assert run.default_out_dir(Config(env="dmc/cartpole-balance")).name.startswith("dmc_cartpole-balance-ad-dqn-")
    assert sac.default_out_dir(SACConfig()).name.startswith("dmc_cartpole-balance-sac-")
