"""Windows along a stack of slices (WSSSCamLib.data.stacks), by hand."""

from WSSSCamLib.data.stacks import window_starts


def test_window_starts_are_evenly_spaced_and_cover_the_stack():
    assert window_starts(10, 4) == [0, 2, 4, 6]
    assert window_starts(16, 16) == [0] and window_starts(17, 16) == [0, 1] and window_starts(25, 16) == [0, 4, 9]
    for n in range(16, 90):
        starts = window_starts(n, 16)
        assert starts[0] == 0 and starts[-1] == n - 16 and all(b - a <= 8 for a, b in zip(starts, starts[1:]))
