"""Backbones, heads and the model factory: shapes, gradients, gating, weights loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from esgar import schema
from esgar.errors import ConfigError
from esgar.models.backbones import PretrainedWeightsError, create_backbone
from esgar.models.factory import AttributeModel, create_model
from esgar.models.heads import list_heads
from esgar.models.heads.esg import choose_num_heads, esg_reference_branch
from esgar.models.heads.lsa import DEFAULT_DICTIONARY, language_prior, load_dictionary
from tests.helpers import ATTRIBUTE_REGIONS

REPO = Path(__file__).resolve().parents[1]
REGIONS = ("hair", "earring", "face", "foreground", "mouth", "eyes", "brows", "nose", "ears",
           "neck")
HEADS = ("esg", "ssp_ssg", "lsa", "global")
IMG = 128  # resnet18 -> a 4x4 grid


def make(head: str, **kw) -> AttributeModel:
    torch.manual_seed(0)
    return create_model("resnet18", head, region_names=REGIONS, attribute_regions=ATTRIBUTE_REGIONS,
                        pretrained=False, img_size=IMG, **kw)


def random_grids(b: int = 2, seed: int = 0, p: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    grids = (torch.rand(b, len(REGIONS), 4, 4, generator=g) < p).float()
    grids[:, :, 0, 0] = 1.0  # no empty region, so every parameter takes part
    return grids


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(1))


def test_registry_lists_every_head():
    assert set(HEADS) <= set(list_heads())
    with pytest.raises(ConfigError, match="known heads"):
        make("nope")
    with pytest.raises(ConfigError, match="takes no option.*pooling"):
        make("global", pooling="mean")


@pytest.mark.parametrize("head", HEADS)
def test_head_shapes_and_gradients(head, images):
    net = make(head).train()
    assert net.grid_size == (4, 4)
    out = net(images, random_grids())
    assert list(out) == list(schema.ATTRIBUTE_NAMES)
    for a in schema.ATTRIBUTES:
        assert out[a.name].shape == (2, a.num_classes)
    sum(v.sum() for v in out.values()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
    assert any(p.grad.abs().sum() > 0 for p in net.backbone.parameters())


@pytest.mark.parametrize("head", HEADS)
def test_attention_maps(head, images):
    net = make(head).eval()
    with torch.no_grad():
        logits, maps = net(images, random_grids(), return_attention=True)
        plain = net(images, random_grids())
    for a in logits:
        torch.testing.assert_close(logits[a], plain[a])
    if head in ("esg", "lsa"):
        assert list(maps) == list(schema.ATTRIBUTE_NAMES)
        for m in maps.values():
            assert m.shape == (2, 4, 4)
            torch.testing.assert_close(m.sum((1, 2)), torch.ones(2))  # a distribution
    else:
        assert maps == {}


def _branch_inputs(net: AttributeModel, images: torch.Tensor, grids: torch.Tensor
                   ) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    hooks = [br.register_forward_pre_hook(
        lambda mod, args, a=a: seen.__setitem__(a, args[0].detach().clone()))
        for a, br in net.head.branches.items()]
    try:
        with torch.no_grad():
            net(images, grids)
    finally:
        for h in hooks:
            h.remove()
    return seen


@pytest.mark.parametrize("blank, affected", [("earring", {"earring"}),
                                             ("hair", {"hair", "hair_color"}),
                                             ("foreground", {"gender", "frontal_face", "style"})])
def test_esg_blanking_a_region_changes_only_its_branches(blank, affected, images):
    net = make("esg").eval()
    grids = random_grids()
    before = _branch_inputs(net, images, grids)
    blanked = grids.clone()
    blanked[:, REGIONS.index(blank)] = 0
    after = _branch_inputs(net, images, blanked)
    changed = {a for a in before if not torch.equal(before[a], after[a])}
    assert changed == affected
    for a in affected:
        assert after[a].abs().sum() == 0  # nothing of the image reaches that branch


def test_esg_features_outside_the_region_do_not_matter():
    net = make("esg").eval()
    feats = torch.randn(2, 512, 4, 4)
    grids = random_grids()
    ear = grids[:, REGIONS.index("earring")]
    perturbed = feats + 5 * torch.randn_like(feats) * (ear == 0).unsqueeze(1)
    with torch.no_grad():
        a, b = net.head(feats, grids), net.head(perturbed, grids)
    torch.testing.assert_close(a["earring"], b["earring"])
    assert not torch.allclose(a["gender"], b["gender"])


@pytest.mark.parametrize("pooling", ["mean", "masked_mean"])
@pytest.mark.parametrize("skip_masked", [True, False])
def test_esg_branch_equals_the_literal_formula(pooling, skip_masked):
    net = make("esg", pooling=pooling).eval()
    br = net.head.branches["smile"]
    br.skip_masked = skip_masked
    tokens = torch.randn(3, 16, 512)
    mask = (torch.rand(3, 16) < 0.5).float()
    mask[1] = 0  # an empty region
    mask[2] = torch.rand(16)  # soft coverage
    with torch.no_grad():
        got, att = br(tokens * mask.unsqueeze(-1), mask)
        want = esg_reference_branch(br, tokens * mask.unsqueeze(-1), mask)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert torch.isfinite(got).all()


def test_num_heads():
    assert choose_num_heads(768) == 12
    assert choose_num_heads(512) == 8
    assert choose_num_heads(320) == 5
    assert choose_num_heads(768, 12) == 12
    with pytest.raises(ValueError, match="does not divide"):
        choose_num_heads(320, 12)
    with pytest.raises(ValueError, match="does not divide"):
        make("esg", num_heads=7)


@pytest.mark.parametrize("head", ["ssp_ssg", "lsa"])
def test_region_grids_change_the_outputs(head, images):
    net = make(head).eval()
    with torch.no_grad():
        a = net(images, random_grids(seed=0))
        b = net(images, random_grids(seed=1))
    assert any(not torch.allclose(a[k], b[k]) for k in a)


def test_global_head_ignores_grids(images):
    net = make("global").eval()
    with torch.no_grad():
        a, b = net(images, random_grids(seed=0)), net(images, None)
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_lsa_language_prior():
    w = torch.tensor([[0.7, 0.3], [0.5, 0.5]])  # [A=2, R=2]
    grids = torch.zeros(2, 2, 4)  # [B, R, N]
    grids[0, 0, :2] = 1  # region 0: tokens 0-1; region 1: token 3
    grids[0, 1, 3] = 1
    p = language_prior(w, grids)  # sample 1: every region empty -> uniform
    torch.testing.assert_close(p[0, 0], torch.tensor([0.35, 0.35, 0.0, 0.3]))
    torch.testing.assert_close(p[1], torch.full((2, 4), 0.25))
    grids[0, 1] = 0  # region 1 empty: its weight goes to the regions present
    torch.testing.assert_close(language_prior(w, grids)[0, 0], torch.tensor([0.5, 0.5, 0, 0]))


def test_lsa_dictionary_file_and_balance():
    d = json.loads(DEFAULT_DICTIONARY.read_text())
    assert d["encoder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert set(schema.ATTRIBUTE_NAMES) <= set(d["attributes"])
    assert set(REGIONS) <= set(d["regions"])
    m = torch.tensor(d["matrix"])
    assert m.shape == (len(d["attributes"]), len(d["regions"]))
    assert m.abs().max() <= 1
    sub = load_dictionary(["earring", "hair"], ["ears", "hair"])
    assert sub[0, 0] == m[d["attributes"].index("earring"), d["regions"].index("ears")]
    assert sub[1].argmax() == 1  # "hair" is closest to the region "hair"
    with pytest.raises(ConfigError, match="make_lsa_dictionary"):
        load_dictionary(["hair"], ["tail"])
    net = make("lsa", tau=0.1)
    torch.testing.assert_close(net.head.balance, torch.full((7,), 0.5))
    torch.testing.assert_close(net.head.region_weights.sum(1), torch.ones(7))


def test_swin_grid_is_7x7_at_224():
    bb = create_backbone("swin_tiny_patch4_window7_224", pretrained=False, img_size=224)
    assert bb.num_features == 768 and bb.grid_size() == (7, 7)
    with torch.no_grad():
        assert bb(torch.zeros(1, 3, 224, 224)).shape == (1, 768, 7, 7)


def test_resnet18_and_vit_grids():
    bb = create_backbone("resnet18", pretrained=False, img_size=64)
    with torch.no_grad():
        assert bb(torch.zeros(2, 3, 64, 64)).shape == (2, 512, 2, 2)
        assert bb.grid_size(100) == tuple(bb(torch.zeros(1, 3, 100, 100)).shape[-2:]) == (4, 4)
    vit = create_backbone("test_vit", pretrained=False, img_size=64)  # 1 class token
    with torch.no_grad():
        assert vit(torch.zeros(2, 3, 64, 64)).shape == (2, vit.num_features, 4, 4)
    assert vit.grid_size() == (4, 4)


def test_pretrained_true_without_hub_fails_clearly(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_ENDPOINT": "http://127.0.0.1:9", "TORCH_HOME": str(tmp_path / "torch"),
           "PYTHONPATH": str(REPO)}
    code = ("from esgar.models.backbones import create_backbone, PretrainedWeightsError\n"
            "try:\n    create_backbone('resnet18', pretrained=True)\n"
            "except PretrainedWeightsError as e:\n    print('ERROR:', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ERROR:" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "pretrained: false" in proc.stdout and "local weights file" in proc.stdout


def test_pretrained_local_file(tmp_path):
    torch.manual_seed(123)
    ref = timm.create_model("resnet18")  # with its 1000-class fc, which must be ignored
    want = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    plain, ckpt = tmp_path / "w.pth", tmp_path / "ckpt.pt"
    torch.save(ref.state_dict(), plain)
    torch.save({"state_dict": ref.state_dict(), "epoch": 3}, ckpt)
    for path in (plain, ckpt, str(plain)):
        got = create_backbone("resnet18", pretrained=path, img_size=64).model.state_dict()
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want)
    # a whole AttributeModel's state dict gives its backbone
    net = create_model("resnet18", "global", region_names=REGIONS,
                       attribute_regions=ATTRIBUTE_REGIONS, pretrained=plain, img_size=64)
    whole = tmp_path / "model.pt"
    torch.save(net.state_dict(), whole)
    got = create_backbone("resnet18", pretrained=whole, img_size=64).model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    torch.save(timm.create_model("convnext_atto").state_dict(), tmp_path / "other.pth")
    with pytest.raises(PretrainedWeightsError, match="does not hold weights"):
        create_backbone("resnet18", pretrained=tmp_path / "other.pth")
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        create_backbone("resnet18", pretrained=tmp_path / "missing.pth")


def test_create_model_arguments_and_config(images):
    net = create_model("resnet18", "esg", attributes=["hair", "earring"],
                       region_names=("hair", "ears"),
                       attribute_regions={"hair": "hair", "earring": "ears"}, pretrained=False,
                       img_size=IMG)
    assert net.region_names == ("hair", "ears")
    assert net.attribute_regions == {"hair": "hair", "earring": "ears"}
    grids = torch.ones(2, 2, 4, 4)
    assert set(net(images, grids)) == {"hair", "earring"}
    with pytest.raises(ValueError, match="region grids"):
        net(images, torch.ones(2, 3, 4, 4))
    with pytest.raises(ValueError, match="feature grid"):
        net(images, torch.ones(2, 2, 7, 7))
    with pytest.raises(ConfigError, match="hair -> 'hair' is not one of the regions"):
        create_model("resnet18", "esg", region_names=("face",),
                     attribute_regions=ATTRIBUTE_REGIONS, pretrained=False, img_size=64)
    with pytest.raises(ConfigError, match="not modelled: beard"):
        create_model("resnet18", "esg", region_names=REGIONS,
                     attribute_regions={**ATTRIBUTE_REGIONS, "beard": "face"}, pretrained=False,
                     img_size=64)
    with pytest.raises(ConfigError, match="no region for 'smile'"):
        create_model("resnet18", "esg", region_names=REGIONS,
                     attribute_regions={k: v for k, v in ATTRIBUTE_REGIONS.items()
                                        if k != "smile"}, pretrained=False, img_size=64)
    with pytest.raises(ConfigError, match="did you mean resnet18"):
        create_model("resnet1", "esg", region_names=REGIONS, attribute_regions=ATTRIBUTE_REGIONS,
                     pretrained=False, img_size=64)
    config = json.loads(json.dumps(net.config))
    again = create_model(**config)
    assert again.state_dict().keys() == net.state_dict().keys()
    again.load_state_dict(net.state_dict())
