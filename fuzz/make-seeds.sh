#!/usr/bin/env bash
# Makes the certificate seeds for the pem_der target at run time, so no certificate is
# committed (committed certificates expire). Run from the repository root before fuzzing.
set -euo pipefail
dir="fuzz/seeds/pem_der"
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -out rsa.pem -days 30 -subj "/CN=seed rsa" \
    -addext "subjectAltName=DNS:db.example.com,IP:127.0.0.1" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null -out ec.pem -days 30 \
    -subj "/CN=seed ec/O=pgtls" -addext "extendedKeyUsage=clientAuth" 2>/dev/null
openssl req -x509 -newkey ed25519 -nodes -keyout /dev/null -out ed25519.pem -days 30 -subj "/CN=seed ed25519" 2>/dev/null
openssl x509 -in rsa.pem -outform DER -out rsa.der
openssl x509 -in ec.pem -outform DER -out ec.der
cat rsa.pem ec.pem > bundle.pem
echo "seeds written to $dir"
