import numpy as np
import pytest

from bayes_fer.data.labels import (
    AFFECTNET_CODES,
    CANONICAL_CLASSES,
    FERPLUS_COLUMNS,
    LABEL_SPACES,
    RAFDB_CODES,
    label_map,
    label_space,
    remap_labels,
    remap_probabilities,
    resolve_folder_names,
)


def test_label_spaces_are_the_documented_orders():
    assert LABEL_SPACES["rafdb"] == ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
    assert LABEL_SPACES["affectnet7"] == ("neutral", "happiness", "sadness", "surprise", "fear", "disgust", "anger")
    assert LABEL_SPACES["affectnet8"] == LABEL_SPACES["affectnet7"] + ("contempt",)
    assert LABEL_SPACES["ferplus"] == (
        "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"
    )
    assert LABEL_SPACES["fer2013"] == ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
    assert LABEL_SPACES["synthetic"] == LABEL_SPACES["affectnet7"]
    for space in LABEL_SPACES.values():
        assert set(space) <= set(CANONICAL_CLASSES) and len(set(space)) == len(space)


def test_code_tables_follow_the_dataset_files():
    assert RAFDB_CODES[1] == "surprise" and RAFDB_CODES[4] == "happiness" and RAFDB_CODES[7] == "neutral"
    assert AFFECTNET_CODES[1] == "happiness" and AFFECTNET_CODES[7] == "contempt"
    assert AFFECTNET_CODES[8] is AFFECTNET_CODES[9] is AFFECTNET_CODES[10] is None
    assert FERPLUS_COLUMNS[-2:] == ("unknown", "NF") and len(FERPLUS_COLUMNS) == 10


def test_label_space_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown label space 'raf'.*rafdb"):
        label_space("raf")


@pytest.mark.parametrize("a", list(LABEL_SPACES))
@pytest.mark.parametrize("b", list(LABEL_SPACES))
def test_round_trip_through_any_space_keeps_shared_classes(a, b):
    src, mid = LABEL_SPACES[a], LABEL_SPACES[b]
    shared = np.array([i for i, c in enumerate(src) if c in mid])
    back = remap_labels(remap_labels(shared, src, mid), mid, src)
    np.testing.assert_array_equal(back, shared)
    names = [mid[j] for j in remap_labels(shared, src, mid)]
    assert names == [src[i] for i in shared]


def test_label_map_by_hand():
    # rafdb surprise(0) -> affectnet7 index 3, neutral(6) -> 0, happiness(3) -> 1
    m = label_map(LABEL_SPACES["rafdb"], LABEL_SPACES["affectnet7"])
    assert m.tolist() == [3, 4, 5, 1, 2, 6, 0]
    assert label_map(LABEL_SPACES["affectnet8"], LABEL_SPACES["rafdb"])[7] == -1


def test_remap_refuses_classes_the_target_lacks():
    with pytest.raises(ValueError, match=r"contempt.*drop those samples"):
        remap_labels([7], LABEL_SPACES["affectnet8"], LABEL_SPACES["rafdb"])


def test_remap_probabilities_reorders_and_refuses_lost_mass():
    p = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0, 0.0])  # ferplus order
    q = remap_probabilities(p, LABEL_SPACES["ferplus"], LABEL_SPACES["affectnet7"])
    # affectnet7: neutral, happiness, sadness, surprise, fear, disgust, anger
    np.testing.assert_allclose(q, [0.5, 0.2, 0.1, 0.1, 0.0, 0.05, 0.05])
    with pytest.raises(ValueError, match="contempt"):
        remap_probabilities(np.eye(8)[7], LABEL_SPACES["ferplus"], LABEL_SPACES["affectnet7"])


def test_non_canonical_names_are_rejected():
    with pytest.raises(ValueError, match="not canonical"):
        label_map(("happy", "sad"), LABEL_SPACES["rafdb"])


def test_folder_names_resolve_through_explicit_tables():
    got = resolve_folder_names(["Happy", "angry", "3", "misc"], {"misc": None}, AFFECTNET_CODES)
    assert got == {"Happy": "happiness", "angry": "anger", "3": "surprise", "misc": None}
    with pytest.raises(ValueError, match=r"\['smile'\].*class_map"):
        resolve_folder_names(["smile", "sad"], None)
    with pytest.raises(ValueError, match="'joy', which is not a canonical class"):
        resolve_folder_names(["smile"], {"smile": "joy"})
    with pytest.raises(ValueError, match=r"\['12'\]"):
        resolve_folder_names(["12"], None, AFFECTNET_CODES)


def test_match_classes_understands_synonyms_in_either_order():
    from bayes_fer.data.labels import match_classes

    match = match_classes(["Happy", "angry", "sad", "surprised", "fearful", "disgusted", "contemptuous", "neutral"],
                          LABEL_SPACES["ferplus"])
    assert [LABEL_SPACES["ferplus"][k] for k in match.data_to_model] == [
        "happiness", "anger", "sadness", "surprise", "fear", "disgust", "contempt", "neutral"]
    assert match.missing_from_data == () and match.unknown_to_model == () and not match.identical
    assert match_classes(LABEL_SPACES["ferplus"], LABEL_SPACES["ferplus"]).identical


@pytest.mark.parametrize("space", sorted(LABEL_SPACES))
def test_every_named_label_space_matches_an_eight_class_model(space):
    from bayes_fer.data.labels import match_classes

    match = match_classes(LABEL_SPACES[space], LABEL_SPACES["ferplus"])
    assert set(match.shared) == set(LABEL_SPACES[space])
    assert set(match.missing_from_data) == set(LABEL_SPACES["ferplus"]) - set(LABEL_SPACES[space])
    for name, k in zip(match.data_classes, match.data_to_model):
        assert LABEL_SPACES["ferplus"][k] == name


def test_match_classes_lists_what_the_model_lacks_and_refuses_twins():
    from bayes_fer.data.labels import match_classes

    match = match_classes(LABEL_SPACES["affectnet8"], LABEL_SPACES["affectnet7"])
    assert match.unknown_to_model == ("contempt",) and match.data_to_model[-1] == -1
    with pytest.raises(ValueError, match=r"name one class twice \(\['happiness', 'happy'\] are synonyms\)"):
        match_classes(["happy", "happiness"], LABEL_SPACES["ferplus"])
