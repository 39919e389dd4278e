"""The split of users among variants: sticky, salted, within a point of the configured
shares; and the configurations the settings refuse, each naming its variable."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings, refusal
from service.variants import DEFAULT, Split, Variant, assign, bucket, parse

THREE = ('[{"name": "control", "share": 0.5}, {"name": "b", "model": "other", "share": 0.3},'
         ' {"name": "c", "share": 0.2}, {"name": "s", "model": "next", "shadow": true}]')


def test_without_variants_one_default_variant_serves_the_configured_model():
    settings = Settings(model="rec", models_dir=Path("/srv/models"))
    (only,) = settings.split.variants
    assert only == Variant(name=DEFAULT, model="rec", models_dir=Path("/srv/models"), share=1.0)
    assert all(assign(settings.split, str(u), "default") is only for u in range(100))


def test_shares_hold_within_a_point_over_100000_users():
    split = parse(THREE, "rec", Path("models"))
    got = Counter(assign(split, f"user-{u}", "exp-7").name for u in range(100_000))
    assert set(got) == {"control", "b", "c"}  # never the shadow
    for variant in split.serving:
        assert abs(got[variant.name] / 100_000 - variant.share) < 0.01, got


def test_a_user_keeps_its_variant_and_another_salt_reshuffles():
    split = parse(THREE, "rec", Path("models"))
    first = [assign(split, str(u), "exp-7").name for u in range(2000)]
    # a fresh parse (another replica with the same configuration) agrees
    assert first == [assign(parse(THREE, "rec", Path("models")), str(u), "exp-7").name
                     for u in range(2000)]
    other = [assign(split, str(u), "exp-8").name for u in range(2000)]
    moved = sum(a != b for a, b in zip(first, other)) / 2000
    assert 0.4 < moved < 0.8  # independent splits of 50/30/20 differ for 62% of users


def test_bucket_is_the_plain_definition():
    import hashlib
    digest = hashlib.sha256(b"salt\x00u-1").digest()
    assert bucket("u-1", "salt") == int.from_bytes(digest[:8], "big") / 2 ** 64
    split = Split((Variant(name="a", share=0.25), Variant(name="b", share=0.75)))
    for u in range(500):
        assert assign(split, str(u), "s").name == ("a" if bucket(str(u), "s") < 0.25 else "b")


@pytest.mark.parametrize(("value", "problem"), [
    ('[{"name": "a", "share": 0.6}, {"name": "b", "share": 0.3}]', "add up to 0.9"),
    ('[{"name": "a", "share": 1}, {"name": "a", "shadow": true}]', "names must differ"),
    ('[{"name": "a", "share": 1}, {"name": "s", "shadow": true, "share": 0.1}]', "no share"),
    ('[{"name": "s", "shadow": true}]', "at least one variant must serve"),
    ('[{"name": "Bad Name", "share": 1}]', "0.name"),
    ('[{"name": "a", "share": 1, "colour": "red"}]', "0.colour"),
    ("[" + ",".join(f'{{"name": "v{i}", "share": 0.1}}' for i in range(10)) + "]", "1 to 8"),
    ("{", "not JSON"),
])
def test_unusable_variants_are_refused_naming_the_variable(value, problem):
    with pytest.raises(ValidationError) as err:
        Settings(variants=value)
    line = refusal(err.value)
    assert line.startswith("GMLREC_VARIANTS: ") and problem in line, line


def test_variants_from_a_file(tmp_path):
    file = tmp_path / "variants.json"
    file.write_text(THREE)
    assert Settings(variants_file=file).split.names() == ["control", "b", "c", "s"]
    with pytest.raises(ValidationError) as err:
        Settings(variants_file=tmp_path / "absent.json")
    assert refusal(err.value).startswith("GMLREC_VARIANTS_FILE: FileNotFoundError")
    with pytest.raises(ValidationError) as err:
        Settings(variants_file=file, variants=THREE)
    assert "not both" in refusal(err.value)
