/*  cli/cmd_keygen.c - `spiketalk keygen NAME`: a CurveZMQ key pair for one
    stage or supervisor. Writes NAME.key (both keys, mode 0600) and
    NAME.key.pub (the public key, 0644, for the peers that accept it);
    never overwrites. A thin layer over st_curve_keygen/st_curve_keys_write
    (pipeline/security.c); docs/SECURITY.md says where the files go.
*/
#include "cli.h"

#include "pipeline/pipeline.h"

#include <string.h>

int st_cmd_keygen(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *out = argc == 2 ? stdout : stderr;
        fprintf(out,
                "usage: spiketalk keygen FILE\n\n"
                "Makes a CurveZMQ key pair: FILE (public and secret key, mode 0600) and\n"
                "FILE.pub (the public key alone, for peers). Name FILE in the stage's\n"
                "`key =` and list FILE.pub where the stage is to be accepted\n"
                "(docs/SECURITY.md). An existing file is never overwritten.\n");
        return argc == 2 ? 0 : 2;
    }
    st_curve_keys k;
    int rc = st_curve_keygen(&k);
    if (!rc)
        rc = st_curve_keys_write(argv[1], &k);
    memset(&k.secret_z85, 0, sizeof k.secret_z85);
    if (rc)
        return cli_fail_lib("keygen", rc, argv[1]);
    printf("%s (secret, 0600) and %s.pub\npublic key: %s\n", argv[1], argv[1], k.public_z85);
    return 0;
}
