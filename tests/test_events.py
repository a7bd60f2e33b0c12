import numpy as np
import pytest

from mouseemo.constants import EMOTION_INDEX
from mouseemo.data.events import IGNORE_INDEX, read_events, write_events
from mouseemo.errors import ConfigError, DataError


@pytest.fixture()
def events_file(tmp_path):
    p = tmp_path / "events.csv"
    p.write_text(
        "onset,duration,label,value\n0,10,neutral,\n12,2,pleasure,4\n20,2,pain,0.5\n30,2,pleasure,20\n"
    )
    return p


def test_read_and_windows(events_file):
    ev = read_events(events_file)
    assert len(ev) == 4
    assert ev.windows("pleasure") == [(12.0, 14.0), (30.0, 32.0)]
    assert np.isnan(ev.value[0]) and ev.value[3] == 20
    t = np.array([0.0, 9.99, 10.0, 12.0, 13.999, 14.0, 21.0, 31.0])
    labels = ev.frame_labels(t)
    expected = [0, 0, IGNORE_INDEX, 1, 1, IGNORE_INDEX, EMOTION_INDEX["pain"], 1]
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(ev.frame_labels(t, outside="neutral")[[2, 5]], [0, 0])
    np.testing.assert_array_equal(ev.window_ids(t, "pleasure"), [-1, -1, -1, 0, 0, -1, -1, 1])
    assert ev.baseline_mask(t).tolist() == [True, True, False, False, False, False, False, False]


def test_baseline_without_neutral_events(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("onset,duration,label\n5,1,pain\n")
    ev = read_events(p)
    assert ev.baseline_mask(np.array([0, 4.9, 5.0])).tolist() == [True, True, False]


def test_round_trip(events_file, tmp_path):
    ev = read_events(events_file)
    write_events(tmp_path / "out.csv", ev)
    again = read_events(tmp_path / "out.csv")
    np.testing.assert_allclose(again.onset, ev.onset)
    assert again.label == ev.label


@pytest.mark.parametrize(
    "text, match",
    [
        ("onset,label\n1,pain\n", "missing column"),
        ("onset,duration,label\n1,-2,pain\n", "negative duration"),
        ("onset,duration,label\n1,2,joy\n", "unknown label 'joy'"),
        ("onset,duration,label\nx,2,pain\n", "must be numbers"),
        ("onset,duration,label\nnan,2,pain\n", "finite"),
    ],
)
def test_bad_events(tmp_path, text, match):
    p = tmp_path / "events.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        read_events(p)
    assert str(p) in str(err.value)


def test_missing_file_and_bad_outside(tmp_path, events_file):
    with pytest.raises(DataError, match="not found"):
        read_events(tmp_path / "nope.csv")
    with pytest.raises(ConfigError):
        read_events(events_file).frame_labels(np.zeros(3), outside="sad")
