"""The nodes' executor queues a ready callback once, even while every pool thread is busy; a node that
hangs on Ctrl-C still exits.

rclpy's MultiThreadedExecutor (9.x and older) yields a task that waits for a pool thread on every
pass of its loop and queues it again: with one long callback holding the only thread, a timer that
comes due is queued thousands of times a second and the loop spins holding the GIL. Counted here
as submissions to the pool, which is what the busy loop does; no timing is asserted.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

pytestmark = pytest.mark.ros


def count_submissions(executor_factory) -> tuple[int, int, int, int]:
    """(pool submissions, long, short and traffic callbacks run) over 1.2 s with one pool thread."""
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("executor_probe", context=context)
    runs = {"long": 0, "short": 0, "traffic": 0}

    def long_callback() -> None:
        runs["long"] += 1
        time.sleep(0.4)  # holds the pool's only thread

    def short_callback() -> None:
        runs["short"] += 1

    node.create_timer(0.05, long_callback, callback_group=MutuallyExclusiveCallbackGroup())
    node.create_timer(0.05, short_callback, callback_group=MutuallyExclusiveCallbackGroup())
    # traffic (like latents arriving in a lockstep loop): wakes the executor's wait while the timers wait
    def traffic_callback() -> None:
        runs["traffic"] += 1

    traffic = node.create_guard_condition(traffic_callback, callback_group=MutuallyExclusiveCallbackGroup())
    stop = threading.Event()

    def wake() -> None:
        while not stop.is_set():
            traffic.trigger()
            time.sleep(0.001)
    executor = executor_factory(context)
    executor.add_node(node)
    submissions = [0]
    submit = executor._executor.submit

    def counting_submit(fn, *args, **kwargs):
        submissions[0] += 1
        return submit(fn, *args, **kwargs)

    executor._executor.submit = counting_submit
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    threading.Thread(target=wake, daemon=True).start()
    time.sleep(1.2)
    stop.set()
    executor.shutdown(timeout_sec=1.0)
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    thread.join(timeout=2)
    return submissions[0], runs["long"], runs["short"], runs["traffic"]


def test_a_waiting_callback_is_queued_once(ros_env) -> None:
    from jepa_common.ros_common import make_executor

    submissions, long_runs, short_runs, traffic = count_submissions(lambda context: make_executor(1, context=context))
    assert long_runs >= 2 and short_runs >= 2 and traffic >= 2, "every callback must still run"
    # each run is one submission (a callback due while the thread is busy waits once in the queue)
    assert submissions <= long_runs + short_runs + traffic + 6, (submissions, long_runs, short_runs, traffic)


def test_rclpy_executor_requeues_here(ros_env) -> None:
    """The control: where the installed rclpy has the re-queueing loop, the plain executor shows it."""
    from rclpy.executors import MultiThreadedExecutor

    submissions, long_runs, short_runs, traffic = count_submissions(
        lambda context: MultiThreadedExecutor(num_threads=1, context=context))
    runs = long_runs + short_runs + traffic
    if submissions <= 1.5 * runs:
        pytest.skip(f"this rclpy queues each callback once already ({submissions} submissions for "
                    f"{runs} runs): the workaround is harmless here")
    assert submissions > 1.5 * runs


# A node whose middleware cleanup would block (Fast DDS deleting a publisher while its peers stop too)
# and whose own last words (the actor's zero command, memory's open episode) must still be said.
NODE = """
import sys, time
import rclpy.node
from jepa_common.ros_common import run_node

class Node(rclpy.node.Node):
    def __init__(self):
        super().__init__("probe")
        print("ready", flush=True)

    def before_exit(self):
        print("saved", flush=True)
        if "hang" in sys.argv:
            time.sleep(60)
        if "hang_holding_the_gil" in sys.argv:  # a C call that keeps the GIL: no Python thread runs meanwhile
            import ctypes
            ctypes.PyDLL(None).sleep(60)

    def destroy_node(self):
        print("destroyed", flush=True)
        time.sleep(60)

raise SystemExit(run_node(Node))
"""


def stop(ros_env, *args: str) -> tuple[int, str, str]:
    """Start the probe node, Ctrl-C it while it spins; (exit code, stdout, stderr); it must end within 10 s."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", NODE, *args], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # spinning
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)  # far before a 60 s hang ends
    finally:
        proc.kill()
    return code, proc.stdout.read(), proc.stderr.read()


def test_ctrl_c_runs_the_nodes_last_words_and_no_middleware_cleanup(ros_env) -> None:
    code, out, err = stop(ros_env)
    assert code == 0, err
    assert out.split() == ["saved"], out  # before_exit ran; destroy_node (which would block) did not


def test_a_node_that_hangs_on_ctrl_c_still_exits_at_the_stop_deadline(ros_env) -> None:
    code, out, err = stop(ros_env, "hang")
    assert code == 0, err
    assert out.split() == ["saved"], out
    assert "still running 2.5 s after shutdown began" in err, err
    assert "before_exit" in err, err  # the thread stacks say where it hung


def test_a_stop_that_hangs_holding_the_gil_still_ends_the_process(ros_env) -> None:
    """The Python deadline cannot run while a C call holds the GIL; the watchdog outside the interpreter can."""
    code, out, err = stop(ros_env, "hang_holding_the_gil")
    assert code == 1, err
    assert out.split() == ["saved"], out
    assert "Timeout" in err and "before_exit" in err, err  # faulthandler's stacks say where it hung


def _churn_under_a_spinning_executor(name: str, churn: Callable[[Any], None]) -> None:
    """Call ``churn(node)`` (create and destroy an entity) 2,000 times while a :func:`make_executor` spins the node
    with a 1 ms timer, threads switching as often as they can; the executor must survive and keep running callbacks."""
    from jepa_common.ros_common import make_executor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(name, context=context)
    executor = make_executor(2, context=context)
    executor.add_node(node)
    ticks = []
    node.create_timer(0.001, lambda: ticks.append(1))  # keeps the executor building wait sets
    errors: list[BaseException] = []

    def spin() -> None:
        try:
            executor.spin()
        except BaseException as exc:  # what killed the configurator's executor
            errors.append(exc)

    thread = threading.Thread(target=spin, daemon=True)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads interleave inside the wait-set building, where the race is
    thread.start()
    try:
        for _ in range(2000):
            churn(node)
            if errors:
                break
        assert thread.is_alive() and not errors, errors
        assert len(ticks) > 10  # it still runs callbacks
    finally:
        sys.setswitchinterval(switch)
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_an_action_server_destroyed_while_the_executor_waits_does_not_kill_it(ros_env) -> None:
    """A lifecycle cleanup destroys the configurator's action server from another thread than the
    executor's; rclpy may have put it in the list of the wait set it is building, and adding the
    destroyed server raised and ended the executor thread (seen once in CI: 'action server pointer is
    invalid', the configurator gone). The executor waits again instead."""
    from rclpy.action import ActionServer

    from jepa_interfaces.action import ReachGoal

    def churn(node: Any) -> None:
        server = ActionServer(node, ReachGoal, "churn", execute_callback=lambda handle: ReachGoal.Result())
        time.sleep(0.0002)
        server.destroy()

    _churn_under_a_spinning_executor("action_churn", churn)


def test_a_publisher_destroyed_while_the_executor_waits_does_not_kill_it(ros_env) -> None:
    """The same race with a publisher's QoS event handler (rclpy lists it in the wait set; another thread
    destroys the publisher): 'InvalidHandle: cannot use Destroyable because destruction was requested' ended
    the configurator's executor during a lifecycle cleanup in CI. The executor waits again instead."""
    from std_msgs.msg import Empty

    def churn(node: Any) -> None:
        pub = node.create_publisher(Empty, "churn", 1)
        time.sleep(0.0002)
        node.destroy_publisher(pub)

    _churn_under_a_spinning_executor("publisher_churn", churn)
