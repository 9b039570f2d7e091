"""CIFAR-10 batches written by Python 3 (protocols 2 and 5) load; pickles that build anything else do not."""
import codecs
import io
import pickle

import numpy as np
import pytest

from robustgan.data import UnsafePickleError, load_dataset
from test_data import make_cifar_batches
from robustgan.data.images import restricted_load


def write_batches(folder, protocol, n=3, seed=0):
    """The six batches in the real layout, pickled with ``protocol`` (test_data's writer)."""
    return make_cifar_batches(folder, n=n, seed=seed, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, 5])
def test_python3_batches_are_read(tmp_path, protocol):
    ref = write_batches(tmp_path, protocol)
    ds = load_dataset("cifar10", root=str(tmp_path))
    assert len(ds) == 15 and ds[0].shape == (3, 32, 32)
    data, labels = ref["data_batch_4"]
    np.testing.assert_array_equal(ds[9].numpy().reshape(-1), data[0])  # CHW planes in file order
    assert ds.labels.tolist() == sum((ref[f"data_batch_{i}"][1] for i in range(1, 6)), [])


def test_protocol_2_helpers_are_limited_to_arrays():
    # protocol 2 names _codecs.encode for an array's bytes; any other use of it is refused
    class Rot13:
        def __reduce__(self):
            return (codecs.encode, ("abc", "rot13"))

    with pytest.raises(UnsafePickleError, match="rot13"):
        restricted_load(io.BytesIO(pickle.dumps({"data": Rot13()}, protocol=2)))


def test_protocol_5_helper_refuses_object_arrays():
    from robustgan.data.images import _array_from_buffer

    assert _array_from_buffer(bytearray(b"\x01\x02\x03\x04"), np.dtype("u1"), (2, 2)).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(UnsafePickleError, match="dtype"):
        _array_from_buffer(b"\0" * 8, np.dtype(object), (1,))


def test_a_malicious_batch_is_still_refused(tmp_path, monkeypatch):
    class Evil:
        def __reduce__(self):
            return (eval, ("__import__('os').mkdir('pwned')",))

    write_batches(tmp_path, 5)
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [1]}, fh, protocol=5)
    with pytest.raises(UnsafePickleError, match="refusing to unpickle builtins.eval"):
        load_dataset("cifar10", root=str(tmp_path), split="test")
    assert not (tmp_path / "pwned").exists()
