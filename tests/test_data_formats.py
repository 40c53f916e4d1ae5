"""CIFAR formats, download (MD5, safe extraction), image folders and their cache."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skiplab.data import clear_memo, load_dataset
from skiplab.data.cifar import load_cifar
from skiplab.data.download import ARCHIVES, download, file_md5, safe_extract
from skiplab.data.folder import load_image_folder

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _batch(rng: np.random.Generator, n: int, classes: int, offset: int):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [(offset + i) % classes for i in range(n)]
    return data, labels


def write_cifar10_python(root: Path, per_batch: int = 6, seed: int = 0, protocol: int = 2):
    """The official cifar-10-batches-py layout with ``per_batch`` images per batch."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data, labels = _batch(rng, per_batch, 10, i)
        expected[name] = (data, labels)
        with open(folder / name, "wb") as fh:
            pickle.dump(
                {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * per_batch},
                fh,
                protocol=protocol,
            )
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(
            {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_cases_per_batch": per_batch},
            fh,
            protocol=protocol,
        )
    return folder, expected


def write_cifar10_binary(root: Path, per_batch: int = 5, seed: int = 1):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    expected = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        data, labels = _batch(rng, per_batch, 10, i)
        expected[name] = (data, labels)
        records = np.concatenate([np.array(labels, dtype=np.uint8)[:, None], data], axis=1)
        (folder / name).write_bytes(records.tobytes())
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    return folder, expected


def write_cifar100_python(root: Path, n: int = 8, seed: int = 2):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name in ("train", "test"):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"fine_labels": list(range(90, 90 + n)), b"coarse_labels": [1] * n, b"data": data}, fh)
    with open(folder / "meta", "wb") as fh:
        pickle.dump({b"fine_label_names": [f"c{i:02d}".encode() for i in range(100)]}, fh)
    return folder


def make_tar(path: Path, source: Path, arcname: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname=arcname)
    return path


# ---- official formats -------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_python_batches_exact_pixels_and_labels(tmp_path, protocol):
    folder, expected = write_cifar10_python(tmp_path, protocol=protocol)
    raw = load_cifar("cifar10", tmp_path)
    assert raw.classes == CIFAR10_NAMES
    train_images, train_labels = raw.train
    assert train_images.shape == (30, 3, 32, 32) and train_images.dtype == torch.uint8
    data, labels = expected["data_batch_2"]
    # pixels are channel-planar: first 1024 bytes red, then green, then blue
    assert torch.equal(train_images[6:12], torch.from_numpy(data).view(6, 3, 32, 32))
    assert train_labels[6:12].tolist() == labels
    assert raw.test[1].tolist() == expected["test_batch"][1]
    # the folder of batches itself works as PATH, and through the spec
    assert torch.equal(load_cifar("cifar10", folder).train[0], train_images)
    ds = load_dataset(f"cifar10:{tmp_path}", "test")
    assert len(ds) == 6 and ds.classes == CIFAR10_NAMES


def test_cifar10_binary_batches(tmp_path):
    _, expected = write_cifar10_binary(tmp_path)
    raw = load_cifar("cifar10", tmp_path)
    data, labels = expected["data_batch_5.bin"]
    assert torch.equal(raw.train[0][20:25], torch.from_numpy(data).view(5, 3, 32, 32))
    assert raw.train[1][20:25].tolist() == labels
    assert raw.classes == CIFAR10_NAMES and raw.test[0].shape == (5, 3, 32, 32)


def test_cifar10_binary_truncated_record_is_an_error(tmp_path):
    folder, _ = write_cifar10_binary(tmp_path)
    path = folder / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="data_batch_3.bin.*multiple of the 3073-byte record"):
        load_cifar("cifar10", tmp_path)


def test_cifar100_fine_labels(tmp_path):
    write_cifar100_python(tmp_path)
    ds = load_dataset(f"cifar100:{tmp_path}", "train")
    assert ds.num_classes == 100 and ds.labels.tolist() == list(range(90, 98))


def test_cifar_tar_gz_read_in_place(tmp_path):
    folder, expected = write_cifar10_python(tmp_path / "src")
    archive = make_tar(tmp_path / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    raw = load_cifar("cifar10", archive)
    assert raw.train[1][:6].tolist() == expected["data_batch_1"][1]
    # a directory that only holds the archive works too
    (tmp_path / "only").mkdir()
    os.replace(archive, tmp_path / "only" / archive.name)
    assert len(load_cifar("cifar10", tmp_path / "only").train[1]) == 30


def test_malicious_pickle_is_refused(tmp_path):
    folder, _ = write_cifar10_python(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(folder / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": Evil()}, fh)
    with pytest.raises(ValueError, match="refusing to load .*system"):
        load_cifar("cifar10", tmp_path)


def test_cifar_path_without_data_names_what_it_expects(tmp_path):
    with pytest.raises(ValueError, match="cifar-10-batches-py.*skiplab data download"):
        load_dataset(f"cifar10:{tmp_path}")


# ---- download ---------------------------------------------------------------------------------
def _official_like_archive(tmp_path: Path) -> tuple[Path, str]:
    folder, _ = write_cifar10_python(tmp_path / "build")
    archive = make_tar(tmp_path / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    return archive, file_md5(archive)


def test_download_from_file_url_verifies_md5_and_extracts(tmp_path):
    archive, md5 = _official_like_archive(tmp_path)
    out = download("cifar10", tmp_path / "data", source=archive.as_uri(), md5=md5)
    assert out == tmp_path / "data" / "cifar-10-batches-py"
    assert (out / "data_batch_5").is_file()
    assert len(load_dataset(f"cifar10:{tmp_path / 'data'}", "train")) == 30
    # from a plain local path as well; the verified archive already there is reused
    again = download("cifar10", tmp_path / "data", source=str(archive), md5=md5)
    assert again == out


def test_download_wrong_md5_fails_with_expected_and_found(tmp_path):
    archive, md5 = _official_like_archive(tmp_path)
    official = ARCHIVES[("cifar10", "python")].md5
    with pytest.raises(ValueError, match=f"expected {official}, found {md5}"):
        download("cifar10", tmp_path / "data", source=archive.as_uri())
    # nothing was left behind: no archive, no partial file, no extracted folder
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == []


def _tar_with(path: Path, members: list[tarfile.TarInfo], payload: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            if info.isfile():
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


REFUSED = {
    "dotdot": [_member("../escape.txt")],
    "nested-dotdot": [_member("cifar-10-batches-py/../../escape.txt")],
    "absolute": [_member("/tmp/absolute-escape.txt")],
    "symlink-out": [_member("cifar-10-batches-py/link", tarfile.SYMTYPE, "../../outside")],
    "symlink-abs": [_member("cifar-10-batches-py/abs-link", tarfile.SYMTYPE, "/etc/passwd")],
    "symlink-inside": [_member("cifar-10-batches-py/b.txt", tarfile.SYMTYPE, "ok.txt")],
    "hardlink-out": [_member("cifar-10-batches-py/hard", tarfile.LNKTYPE, "../outside")],
    "hardlink-inside": [_member("cifar-10-batches-py/hard", tarfile.LNKTYPE, "cifar-10-batches-py/ok.txt")],
    # each link stays inside dest on its own; together a/ is dest's parent
    "symlink-chain": [
        _member("d", tarfile.DIRTYPE),
        _member("b", tarfile.SYMTYPE, "d/.."),
        _member("a", tarfile.SYMTYPE, "b/.."),
        _member("a/evil"),
    ],
    "fifo": [_member("cifar-10-batches-py/fifo", tarfile.FIFOTYPE)],
    "char-device": [_member("cifar-10-batches-py/null", tarfile.CHRTYPE)],
    "block-device": [_member("cifar-10-batches-py/sda", tarfile.BLKTYPE)],
}


@pytest.mark.parametrize("fallback", [False, True], ids=["data-filter", "no-data-filter"])
@pytest.mark.parametrize("case", list(REFUSED))
def test_extraction_refuses_links_devices_and_escapes_writing_nothing(tmp_path, monkeypatch, case, fallback):
    if fallback:  # a Python without tarfile.data_filter
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = _tar_with(
        tmp_path / "bad.tar.gz", [_member("cifar-10-batches-py/ok.txt"), *REFUSED[case], _member("z/last.txt")]
    )
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match="refusing to extract"):
        safe_extract(archive, dest)
    assert not dest.exists()  # every member was checked before anything was written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


@pytest.mark.parametrize("fallback", [False, True], ids=["data-filter", "no-data-filter"])
def test_extraction_writes_files_and_folders(tmp_path, monkeypatch, fallback):
    if fallback:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive = _tar_with(
        tmp_path / "ok.tar.gz", [_member("d", tarfile.DIRTYPE), _member("d/a.txt"), _member("./d/e/b.txt")]
    )
    names = safe_extract(archive, tmp_path / "dest")
    assert names == ["d", "d/a.txt", "./d/e/b.txt"]
    assert (tmp_path / "dest" / "d" / "a.txt").read_bytes() == b"x"
    assert (tmp_path / "dest" / "d" / "e" / "b.txt").read_bytes() == b"x"


def test_extraction_refuses_a_path_through_a_link_already_on_disk(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a").symlink_to(tmp_path)  # e.g. left by an earlier, other archive
    archive = _tar_with(tmp_path / "x.tar.gz", [_member("a/evil")])
    with pytest.raises(ValueError, match="refusing to extract.*through a link on disk"):
        safe_extract(archive, dest)
    assert not (tmp_path / "evil").exists()


# ---- image folders ----------------------------------------------------------------------------
def write_folder(
    root: Path, classes=("b_cls", "a_cls", "c_cls"), per_class: int = 4, size=(8, 6), fmt: str = "png", seed: int = 0
) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {}
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i:03d}.{fmt}")
            arrays[f"{c}/{i:03d}.{fmt}"] = arr
    return arrays


def test_image_folder_classes_sorted_and_pixels_exact(tmp_path):
    arrays = write_folder(tmp_path / "imgs")
    ds = load_dataset(f"folder:{tmp_path / 'imgs'}", cache_dir=str(tmp_path / "cache"))
    assert ds.classes == ["a_cls", "b_cls", "c_cls"]
    assert ds.images.shape == (12, 3, 6, 8) and ds.class_counts() == [4, 4, 4]
    first_b = ds.images[4].permute(1, 2, 0).numpy()
    assert np.array_equal(first_b, arrays["b_cls/000.png"])
    mean = np.stack(list(arrays.values())).reshape(-1, 3).mean(0) / 255
    assert np.allclose(ds.mean, mean, atol=1e-6)
    with pytest.raises(ValueError, match="no test split"):
        load_dataset(f"folder:{tmp_path / 'imgs'}", "test", cache_dir=str(tmp_path / "cache"))


def test_grayscale_folder_gives_one_channel(tmp_path):
    for c in ("x", "y"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.full((5, 5), 7, np.uint8), "L").save(tmp_path / c / "0.png")
    ds = load_dataset(f"folder:{tmp_path}", cache_dir=str(tmp_path / "cache"))
    assert ds.images.shape == (2, 1, 5, 5) and ds.mean == pytest.approx((7 / 255,))


def test_corrupt_image_error_names_file_and_skip_bad_counts(tmp_path):
    root = tmp_path / "imgs"
    write_folder(root)
    (root / "a_cls" / "001.png").write_bytes(b"not a png at all")
    (root / "c_cls" / "003.png").write_bytes((root / "c_cls" / "003.png").read_bytes()[:60])
    cache = str(tmp_path / "cache")
    with pytest.raises(ValueError, match=r"a_cls/001\.png.*and 1 more.*skip_bad"):
        load_dataset(f"folder:{root}", cache_dir=cache)
    ds = load_dataset(f"folder:{root}", skip_bad=True, cache_dir=cache)
    assert ds.skipped == 2 and len(ds) == 10 and ds.class_counts() == [3, 4, 3]
    assert ds.skipped_files == ["a_cls/001.png", "c_cls/003.png"]
    with pytest.raises(ValueError, match=r"a_cls/001\.png"):  # from the in-process memo
        load_dataset(f"folder:{root}", cache_dir=cache)
    clear_memo()  # from the disk cache: the same error without skip_bad
    with pytest.raises(ValueError, match=r"a_cls/001\.png"):
        load_dataset(f"folder:{root}", cache_dir=cache)


def test_empty_class_folder_and_empty_root_are_errors(tmp_path):
    write_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "d_empty").mkdir()
    (tmp_path / "imgs" / "d_empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="d_empty.*contains no images"):
        load_dataset(f"folder:{tmp_path / 'imgs'}", cache_dir=str(tmp_path / "c"))
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "0.png").write_bytes(b"")
    with pytest.raises(ValueError, match="no class folders"):
        load_dataset(f"folder:{tmp_path / 'bare'}", cache_dir=str(tmp_path / "c"))


def test_mixed_image_sizes_are_an_error(tmp_path):
    write_folder(tmp_path, classes=("a",), size=(8, 8))
    write_folder(tmp_path, classes=("b",), size=(9, 8))
    with pytest.raises(ValueError, match="differ in size.*9x8"):
        load_image_folder(tmp_path, use_cache=False)


def test_train_test_tree_and_val_split(tmp_path):
    write_folder(tmp_path / "train", per_class=10, seed=1)
    write_folder(tmp_path / "test", per_class=2, seed=2)
    cache = str(tmp_path / "cache")
    spec = f"folder:{tmp_path}"
    train = load_dataset(spec, "train", val_size=6, seed=3, cache_dir=cache)
    val = load_dataset(spec, "val", val_size=6, seed=3, cache_dir=cache)
    test = load_dataset(spec, "test", val_size=6, seed=3, cache_dir=cache)
    assert (len(train), len(val), len(test)) == (24, 6, 6)
    assert train.mean == val.mean == test.mean  # statistics of the 24 training images
    full = load_dataset(spec, "train", cache_dir=cache)
    assert full.mean != train.mean
    rows = {tuple(r.flatten().tolist()) for r in torch.cat([train.images, val.images])}
    assert len(rows) == 30  # disjoint and together the whole training folder


def test_cache_hit_on_second_load_and_invalidated_by_a_changed_file(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    write_folder(root, per_class=3)
    cache = tmp_path / "cache"
    calls = []
    import skiplab.data.folder as folder_mod

    real = folder_mod.decode_folder
    monkeypatch.setattr(folder_mod, "decode_folder", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = load_image_folder(root, cache_dir=str(cache))
    assert len(calls) == 1 and len(list(cache.rglob("*.pt"))) == 1
    second = load_image_folder(root, cache_dir=str(cache))
    assert len(calls) == 1 and torch.equal(first.images, second.images)
    # rewrite one file with new pixels (same name and size): the content key changes
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(root / "b_cls" / "001.png")
    third = load_image_folder(root, cache_dir=str(cache))
    assert len(calls) == 2 and int(third.images[4].sum()) == 0
    # through load_dataset too (the in-process memo notices the change)
    ds = load_dataset(f"folder:{root}", cache_dir=str(cache))
    time.sleep(0.01)
    Image.fromarray(np.full((6, 8, 3), 255, np.uint8)).save(root / "b_cls" / "001.png")
    ds2 = load_dataset(f"folder:{root}", cache_dir=str(cache))
    assert int(ds.images[4].min()) == 0 and int(ds2.images[4].min()) == 255


def test_unwritable_cache_still_loads(tmp_path):
    write_folder(tmp_path / "imgs", per_class=2)
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    out = load_image_folder(tmp_path / "imgs", cache_dir=str(blocker))
    assert out.images.shape[0] == 6


def test_real_cifar10_jpg_subset(cifar10_jpg, tmp_path):
    """Two classes of the real CIFAR-10 test folder: sizes, JPEG decoding, class order."""
    root = tmp_path / "sub"
    root.mkdir()
    for c in ("airplane", "cat"):
        (root / c).symlink_to(cifar10_jpg / "test" / c)
    ds = load_dataset(f"folder:{root}", cache_dir=str(tmp_path / "cache"))
    assert ds.classes == ["airplane", "cat"] and ds.images.shape == (1000, 3, 32, 32)
    assert ds.class_counts() == [500, 500]
    assert 0.3 < ds.mean[0] < 0.7 and 0.15 < ds.std[0] < 0.35


def test_verify_rereads_files_whose_size_and_mtime_did_not_change(tmp_path):
    root = tmp_path / "imgs"
    write_folder(root, per_class=2, fmt="bmp")  # uncompressed: same size for any pixels
    cache = str(tmp_path / "cache")
    first = load_image_folder(root, cache_dir=cache)
    target = root / "a_cls" / "000.bmp"
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF  # flip one pixel byte in place, then restore the modification time
    with open(target, "r+b") as fh:
        fh.write(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    fresh = load_image_folder(root, cache_dir=cache, verify=True)
    assert not torch.equal(fresh.images[0], first.images[0])


# ---- command line -----------------------------------------------------------------------------
def test_cli_download_info_and_cache(tmp_path, capsys):
    from skiplab.cli import main

    archive, md5 = _official_like_archive(tmp_path)
    assert main(["data", "download", "cifar10", str(tmp_path / "d"), "--source", archive.as_uri(), "--md5", md5]) == 0
    assert "cifar-10-batches-py" in capsys.readouterr().out
    assert main(["data", "download", "cifar10", str(tmp_path / "e"), "--source", str(archive)]) == 2
    assert "MD5 mismatch" in capsys.readouterr().err
    assert main(["data", "info", f"cifar10:{tmp_path / 'd'}", "--val-size", "10"]) == 0
    out = capsys.readouterr().out
    assert "airplane" in out and "train      20 images" in out and "val        10 images" in out
    write_folder(tmp_path / "imgs", per_class=2)
    cache = str(tmp_path / "cache")
    assert main(["data", "info", f"folder:{tmp_path / 'imgs'}", "--json", "--cache-dir", cache]) == 0
    assert '"a_cls"' in capsys.readouterr().out
    assert main(["data", "cache", "list", "--cache-dir", cache]) == 0
    assert "1 file(s)" in capsys.readouterr().out
    assert main(["data", "cache", "clear", "--cache-dir", cache]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert main(["data", "info", "imagenet:/x"]) == 2
    assert "unknown data kind 'imagenet'" in capsys.readouterr().err


def test_cifar_kind_on_an_image_folder_checks_the_class_count(tmp_path):
    write_folder(tmp_path / "train", per_class=1)
    write_folder(tmp_path / "test", per_class=1)
    with pytest.raises(ValueError, match="has 3 class folders; expected 10"):
        load_dataset(f"cifar10:{tmp_path}", cache_dir=str(tmp_path / "cache"))
    assert load_dataset(f"folder:{tmp_path}", "test", cache_dir=str(tmp_path / "cache")).class_counts() == [1, 1, 1]
