/* When the library syncs: at flush and close, and never with NO_SYNC. */
#include "test-backends.h"
#include "test.h"

static uint64_t syncs_for(unsigned extra_flags)
{
    struct qcowkit_io *mem = test_mem_io(NULL, 0), *fio;
    struct qcowkit_create_opts co;
    struct qcowkit_open_opts oo;
    struct qcowkit_image *img;
    uint8_t buf[10000];
    uint64_t syncs;

    test_create_opts(&co, 8 << 20, 4096, NULL);
    CHECK_OK(qcowkit_create_io(mem, "sync.qcow", &co));
    CHECK_OK(fault_backend_new(mem, &fio));
    qcowkit_open_opts_init(&oo);
    oo.flags = QCOWKIT_OPEN_RDWR | extra_flags;
    CHECK_OK(qcowkit_open_io(fio, "sync.qcow", &oo, &img));
    memset(buf, 0x5a, sizeof buf);
    CHECK_OK(qcowkit_pwrite(img, buf, sizeof buf, 12345));
    /* Writes alone never sync: table updates wait for the flush. */
    CHECK_EQ(fault_backend_count(fio, FAULT_OP_FLUSH), 0);
    CHECK_OK(qcowkit_flush(img));
    CHECK_OK(qcowkit_close(img));
    syncs = fault_backend_count(fio, FAULT_OP_FLUSH);
    qcowkit_io_close(fio);

    /* Either way the data and tables were written. */
    img = test_open_io(mem, "sync.qcow", QCOWKIT_OPEN_RDONLY);
    memset(buf, 0, sizeof buf);
    CHECK_OK(qcowkit_pread(img, buf, sizeof buf, 12345));
    for (size_t i = 0; i < sizeof buf; i++)
        CHECK_EQ(buf[i], 0x5a);
    qcowkit_close(img);
    qcowkit_io_close(mem);
    return syncs;
}

int main(void)
{
    test_init(60);
    /* data, then L2 tables, then new L1 entries: three barriers */
    CHECK_EQ(syncs_for(0), 3);
    CHECK_EQ(syncs_for(QCOWKIT_OPEN_NO_SYNC), 0);
    printf("test-sync: ok\n");
    return 0;
}
