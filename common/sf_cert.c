/*  sf_cert: CurveZMQ key pairs on disk. */

#include "common/sf_cert.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool
sf_cert_key_valid (const char *text)
{
    if (!text || strlen (text) != SF_CERT_KEY_TEXT)
        return false;
    uint8_t binary [32];
    return zmq_z85_decode (binary, text) != NULL;
}

//  Create PATH empty with mode 0600, failing if it exists unless FORCE.
static int
s_create_private (const char *path, bool force, sf_fault_t *fault)
{
    int flags = O_WRONLY | O_CREAT | (force ? O_TRUNC : O_EXCL);
    int fd = open (path, flags, 0600);
    if (fd < 0)
        return sf_fault_set (
            fault, SF_EINVAL, "cannot create %s: %s%s", path, strerror (errno),
            errno == EEXIST ? " (use --force to replace it)" : "");
    //  An existing file keeps its old mode under O_TRUNC: tighten it.
    int rc = fchmod (fd, 0600);
    close (fd);
    if (rc)
        return sf_fault_set (fault, SF_EINVAL, "cannot chmod %s: %s", path,
                             strerror (errno));
    return 0;
}

int
sf_cert_keygen (const char *dir, const char *name, bool force,
                sf_fault_t *fault)
{
    if (!*name || strchr (name, '/'))
        return sf_fault_set (fault, SF_EINVAL,
                             "key name '%s' must be non-empty and have no '/'",
                             name);
    char *public_path = zsys_sprintf ("%s/%s.cert", dir, name);
    char *secret_path = zsys_sprintf ("%s/%s.cert_secret", dir, name);
    zcert_t *cert = zcert_new ();
    int rc = -1;
    if (!force && zsys_file_exists (public_path)) {
        sf_fault_set (fault, SF_EINVAL,
                      "cannot create %s: File exists (use --force to "
                      "replace it)",
                      public_path);
        goto done;
    }
    if (s_create_private (secret_path, force, fault))
        goto done;
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "created-by", "simfabric fabricctl keygen");
    if (zcert_save_secret (cert, secret_path)) {
        unlink (secret_path);
        sf_fault_set (fault, SF_EINVAL, "cannot write %s", secret_path);
        goto done;
    }
    if (zcert_save_public (cert, public_path)) {
        unlink (secret_path);
        sf_fault_set (fault, SF_EINVAL, "cannot write %s", public_path);
        goto done;
    }
    rc = 0;
done:
    zcert_destroy (&cert);
    free (secret_path);
    free (public_path);
    return rc;
}

//  Read the ZPL certificate file at PATH. Caller destroys the tree.
static zconfig_t *
s_read_cert (const char *path, sf_fault_t *fault)
{
    struct stat info;
    if (stat (path, &info)) {
        sf_fault_set (fault, SF_EINVAL, "cannot read key file %s: %s", path,
                      strerror (errno));
        return NULL;
    }
    if (!S_ISREG (info.st_mode)) {
        sf_fault_set (fault, SF_EINVAL, "key file %s is not a regular file",
                      path);
        return NULL;
    }
    zconfig_t *root = zconfig_load (path);
    if (!root)
        sf_fault_set (fault, SF_EINVAL,
                      "key file %s is not a zcert certificate", path);
    return root;
}

zcert_t *
sf_cert_load_secret (const char *path, sf_fault_t *fault)
{
    //  What the file holds is checked before its mode: a public .cert is
    //  readable by anyone by design, and chmod would not make it a secret.
    zconfig_t *root = s_read_cert (path, fault);
    if (!root)
        return NULL;
    const char *public_text = zconfig_get (root, "curve/public-key", NULL);
    const char *secret_text = zconfig_get (root, "curve/secret-key", NULL);
    zcert_t *cert = NULL;
    struct stat info;
    if (!secret_text && sf_cert_key_valid (public_text))
        sf_fault_set (fault, SF_EINVAL,
                      "key file %s is a public certificate (it holds no "
                      "secret key): give the .cert_secret file of the pair",
                      path);
    else if (!sf_cert_key_valid (secret_text))
        sf_fault_set (fault, SF_EINVAL, "key file %s holds no valid secret key",
                      path);
    else if (!sf_cert_key_valid (public_text))
        sf_fault_set (fault, SF_EINVAL, "key file %s holds no valid public key",
                      path);
    else if (stat (path, &info) == 0 && (info.st_mode & 077))
        sf_fault_set (fault, SF_EINVAL,
                      "secret key file %s is accessible by group or others "
                      "(mode %04o); run: chmod 600 %s",
                      path, (unsigned) (info.st_mode & 07777), path);
    else
        cert = zcert_new_from_txt (public_text, secret_text);
    zconfig_destroy (&root);
    return cert;
}

int
sf_cert_load_public (const char *where, char *key, sf_fault_t *fault)
{
    if (sf_cert_key_valid (where) && !zsys_file_exists (where)) {
        memcpy (key, where, SF_CERT_KEY_TEXT + 1);
        return 0;
    }
    zconfig_t *root = s_read_cert (where, fault);
    if (!root)
        return -1;
    const char *public_text = zconfig_get (root, "curve/public-key", NULL);
    int rc = 0;
    if (sf_cert_key_valid (public_text))
        memcpy (key, public_text, SF_CERT_KEY_TEXT + 1);
    else
        rc = sf_fault_set (fault, SF_EINVAL,
                           "key file %s holds no valid public key", where);
    zconfig_destroy (&root);
    return rc;
}

int
sf_cert_test (bool verbose)
{
    int rc;
    if (verbose)
        printf (" * sf_cert: ");
    char dir [] = "/tmp/sf_cert_test_XXXXXX";
    char *made = mkdtemp (dir);
    assert (made);
    sf_fault_t fault;

    rc = sf_cert_keygen (dir, "alice", false, &fault);
    assert (rc == 0);
    char *public_path = zsys_sprintf ("%s/alice.cert", dir);
    char *secret_path = zsys_sprintf ("%s/alice.cert_secret", dir);
    struct stat info;
    rc = stat (secret_path, &info);
    assert (rc == 0);
    assert ((info.st_mode & 0777) == 0600);

    //  A second keygen refuses to clobber; --force replaces.
    rc = sf_cert_keygen (dir, "alice", false, &fault);
    assert (rc == -1);
    assert (strstr (fault.message, "File exists"));
    rc = sf_cert_keygen (dir, "a/b", false, &fault);
    assert (rc == -1);

    zcert_t *cert = sf_cert_load_secret (secret_path, &fault);
    assert (cert);
    char key [SF_CERT_KEY_TEXT + 1];
    rc = sf_cert_load_public (public_path, key, &fault);
    assert (rc == 0);
    assert (strcmp (key, zcert_public_txt (cert)) == 0);
    rc = sf_cert_load_public (secret_path, key, &fault);
    assert (rc == 0);
    assert (strcmp (key, zcert_public_txt (cert)) == 0);
    //  A bare Z85 key is accepted as a public key.
    char copy [SF_CERT_KEY_TEXT + 1];
    strcpy (copy, zcert_public_txt (cert));
    rc = sf_cert_load_public (copy, key, &fault);
    assert (rc == 0);
    zcert_destroy (&cert);

    //  A secret file that others can read is refused, naming the fix.
    chmod (secret_path, 0644);
    cert = sf_cert_load_secret (secret_path, &fault);
    assert (!cert);
    assert (strstr (fault.message, "mode 0644"));
    assert (strstr (fault.message, "chmod 600"));
    chmod (secret_path, 0640);
    cert = sf_cert_load_secret (secret_path, &fault);
    assert (!cert);
    chmod (secret_path, 0600);

    //  The public file is not a secret key, whatever its mode.
    chmod (public_path, 0600);
    cert = sf_cert_load_secret (public_path, &fault);
    assert (!cert);
    assert (strstr (fault.message, "is a public certificate"));
    chmod (public_path, 0644);
    cert = sf_cert_load_secret (public_path, &fault);
    assert (!cert);
    assert (strstr (fault.message, "is a public certificate"));
    assert (!strstr (fault.message, "chmod"));
    cert = sf_cert_load_secret ("/nonexistent/x", &fault);
    assert (!cert);
    assert (strstr (fault.message, "cannot read key file /nonexistent/x"));
    rc = sf_cert_load_public ("not-a-key", key, &fault);
    assert (rc == -1);

    //  --force tightens the mode of the file it replaces.
    chmod (secret_path, 0644);
    rc = sf_cert_keygen (dir, "alice", true, &fault);
    assert (rc == 0);
    rc = stat (secret_path, &info);
    assert (rc == 0);
    assert ((info.st_mode & 0777) == 0600);

    assert (!sf_cert_key_valid ("short"));
    assert (!sf_cert_key_valid (NULL));

    unlink (public_path);
    unlink (secret_path);
    rmdir (dir);
    free (public_path);
    free (secret_path);
    if (verbose)
        printf ("OK\n");
    return 0;
}
