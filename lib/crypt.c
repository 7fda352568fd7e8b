/*
 * Legacy qcow AES: AES-128-CBC over each 512-byte sector, the IV being
 * the guest sector number, little-endian, in a zeroed block ("plain64").
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "internal.h"

void qk_crypt_set_key(struct qcowkit_image *img, const uint8_t *key, size_t len)
{
    memset(img->key, 0, sizeof img->key);
    memcpy(img->key, key, len < sizeof img->key ? len : sizeof img->key);
    img->has_key = true;
}

void qk_crypt_wipe(struct qcowkit_image *img)
{
    OPENSSL_cleanse(img->key, sizeof img->key);
    img->has_key = false;
}

static void sector_iv(uint64_t sector, uint8_t iv[16])
{
    memset(iv, 0, 16);
    for (int i = 0; i < 8; i++)
        iv[i] = (uint8_t)(sector >> (8 * i));
}

int qk_crypt(const struct qcowkit_image *img, uint8_t *buf, size_t len,
             uint64_t guest_offset, bool encrypt)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint64_t sector = guest_offset / QCOW_SECTOR;
    uint8_t iv[16];
    int ok, out_len;

    ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_128_cbc(), NULL, img->key, NULL,
                                  encrypt ? 1 : 0) == 1;
    if (ok)
        EVP_CIPHER_CTX_set_padding(ctx, 0);
    for (size_t done = 0; ok && done < len; done += QCOW_SECTOR, sector++) {
        sector_iv(sector, iv);
        ok = EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) == 1 &&
             EVP_CipherUpdate(ctx, buf + done, &out_len, buf + done,
                              QCOW_SECTOR) == 1;
    }
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return qk_error(-EIO, "%s: AES %s failed", img->name,
                        encrypt ? "encryption" : "decryption");
    return 0;
}
