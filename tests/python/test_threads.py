"""One image object used from several threads at once."""
import random
import threading

from conftest import qcowkit


def test_threads_read_one_image(images):
    path, data = images.get("compressed")
    errors = []

    def reader(img, seed):
        rnd = random.Random(seed)
        try:
            for _ in range(300):
                off = rnd.randrange(0, len(data))
                n = rnd.randrange(1, 100000)
                if img.pread(n, off) != data[off:off + n]:
                    errors.append((seed, off, n))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with qcowkit.open(path) as img:
        threads = [threading.Thread(target=reader, args=(img, s))
                   for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_threads_over_fileobj(images):
    import io
    path, data = images.get("data")
    with open(path, "rb") as f:
        img = qcowkit.open_fileobj(io.BytesIO(f.read()))
    bad = []

    def reader(seed):
        rnd = random.Random(seed)
        for _ in range(200):
            off = rnd.randrange(0, len(data))
            n = rnd.randrange(1, 30000)
            if img.pread(n, off) != data[off:off + n]:
                bad.append(seed)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    img.close()
    assert bad == []


def test_close_while_threads_read(images):
    """Reads racing close() either succeed or raise ValueError; no crash."""
    path, data = images.get("data")
    for round_ in range(20):
        img = qcowkit.open(path)
        outcomes = []
        start = threading.Barrier(5)

        def reader():
            start.wait()
            try:
                for _ in range(50):
                    assert img.pread(65536, 4096) == data[4096:4096 + 65536]
                outcomes.append("ok")
            except ValueError:
                outcomes.append("closed")

        threads = [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        start.wait()
        img.close()
        for t in threads:
            t.join()
        assert len(outcomes) == 4
        assert img.closed
