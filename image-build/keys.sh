# Sourced by build.sh and bundle.sh: the RAUC signing key, its certificate and the keyring
# the image trusts.
#   production: RAUC_KEY, RAUC_CERT (signer) and RAUC_KEYRING (the CA the devices trust; may
#               be RAUC_CERT itself for a self-signed signer), passed in by the caller
#   development: $OUT/keys/dev.key + dev.cert, made here once (self-signed, 10 years) and
#               reused by later builds, so bundles of one build dir install on its images
if [ -n "${RAUC_KEY:-}" ] || [ -n "${RAUC_CERT:-}" ]; then
    [ -r "${RAUC_KEY:-}" ] && [ -r "${RAUC_CERT:-}" ] || { echo "keys: RAUC_KEY and RAUC_CERT must both name readable files" >&2; exit 1; }
    RAUC_KEYRING=${RAUC_KEYRING:-$RAUC_CERT}
    RAUC_KEY_KIND=production
else
    mkdir -p "$OUT/keys"
    if [ ! -s "$OUT/keys/dev.key" ] || [ ! -s "$OUT/keys/dev.cert" ]; then
        openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -sha256 \
            -subj "/O=edge/OU=development builds, not for the field/CN=edge development update key" \
            -keyout "$OUT/keys/dev.key" -out "$OUT/keys/dev.cert" 2>"$OUT/keys/openssl.log" \
            || { cat "$OUT/keys/openssl.log" >&2; exit 1; }
        chmod 0600 "$OUT/keys/dev.key"
        echo "keys: made a development signing key in $OUT/keys (production: set RAUC_KEY, RAUC_CERT, RAUC_KEYRING)"
    fi
    RAUC_KEY=$OUT/keys/dev.key RAUC_CERT=$OUT/keys/dev.cert RAUC_KEYRING=$OUT/keys/dev.cert
    RAUC_KEY_KIND=development
fi
export RAUC_KEY RAUC_CERT RAUC_KEYRING RAUC_KEY_KIND
