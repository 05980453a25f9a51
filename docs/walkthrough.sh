#!/bin/sh
# A data space on one machine, by hand: the data-space authority, the city bureau's connector
# and the bank's connector; both onboarded by the operator; the bureau publishes a CSV under a
# policy; the bank finds it in the bureau's catalogue and fetches it. Run it from an empty
# directory with `dataspace` on the PATH (from the repository, after `make demo`:
# export PATH="$PWD/.venv/bin:$PATH"; mkdir trial && cd trial). It needs the ports 8282
# (authority), 8181 (bureau), 8191 (bank) free, curl and jq. The README quotes this file; a test
# runs it.
set -eu

# One setting turns on the loopback conveniences of a trial on one machine (logged loudly):
# plain HTTP for did:web and every outbound call, destinations on 127.0.0.0/8 and ::1, and each
# connector trusting the local authority, did:web:127.0.0.1%3A8282:authority, for every
# credential type. Without it, set *_DID_WEB_ALLOW_HTTP=true,
# *_OUTBOUND_ALLOWED_NETWORKS='["127.0.0.0/8"]' and CONNECTOR_TRUSTED_ISSUERS yourself.
export KEXIN_PROFILE=local

# Each service's own settings, in a file to source (one shell each, or a subshell as here).
cat > authority.env <<'SETTINGS'
export BROKER_PORT=8282 BROKER_DATABASE_URL=sqlite:///authority.db
export BROKER_KEY_PASSPHRASE='authority: choose a long passphrase'
export BROKER_ADMIN_API_KEY='operator-key-of-the-trial'
SETTINGS
cat > bureau.env <<SETTINGS
export CONNECTOR_PARTICIPANT_ID='did:web:127.0.0.1%3A8181:bureau' CONNECTOR_PORT=8181
export CONNECTOR_DATABASE_URL=sqlite:///bureau.db CONNECTOR_DATA_ROOTS='["$PWD/data"]'
export CONNECTOR_KEY_PASSPHRASE='bureau: choose a long passphrase'
export CONNECTOR_MANAGEMENT_API_KEY='bureau-management-key'
SETTINGS
cat > bank.env <<'SETTINGS'
export CONNECTOR_PARTICIPANT_ID='did:web:127.0.0.1%3A8191:bank' CONNECTOR_PORT=8191
export CONNECTOR_DATABASE_URL=sqlite:///bank.db
export CONNECTOR_KEY_PASSPHRASE='bank: choose a long passphrase'
export CONNECTOR_MANAGEMENT_API_KEY='bank-management-key'
SETTINGS

# 1. Start the authority and the two connectors (each keeps running; logs in *.log).
(. ./authority.env && exec dataspace broker serve) > authority.log 2>&1 &
authority=$!
(. ./bureau.env && exec dataspace connector serve) > bureau.log 2>&1 &
bureau=$!
(. ./bank.env && exec dataspace connector serve) > bank.log 2>&1 &
bank=$!
trap 'kill $authority $bureau $bank 2>/dev/null' EXIT
for port in 8282 8181 8191; do
    curl -fs --retry 60 --retry-connrefused --retry-delay 1 "http://127.0.0.1:$port/health"
    echo
done

# 2. Both ask the authority for credentials (--no-wait: without it, onboard waits for the
# operator's decision), stating who they are.
(. ./bureau.env && dataspace connector onboard --no-wait \
    --authority 'did:web:127.0.0.1%3A8282:authority' \
    --type MembershipCredential --type PublicDataHolderCredential \
    --name '广州市政务服务数据管理局' --credit-code 11440100MB2C12345P --region 440100 \
    --data-grade important)
(. ./bank.env && dataspace connector onboard --no-wait \
    --authority 'did:web:127.0.0.1%3A8282:authority' \
    --type MembershipCredential --type FinancialInstitutionCredential \
    --name '广州示例银行股份有限公司' --credit-code 91440101MA59XKQ72B --region 440106 \
    --data-grade general)

# 3. The operator sees the waiting requests and approves each one, with the organisation it
# stated; the authority delivers the credentials to each connector.
(. ./authority.env && dataspace authority requests --status RECEIVED)
for request in $(. ./authority.env && dataspace authority requests --status RECEIVED \
    --output json | jq -r '.[].issuerPid'); do
    (. ./authority.env && dataspace authority approve "$request")
done
(. ./authority.env && dataspace authority participants)
(. ./bank.env && dataspace connector credentials list)

# 4. The bureau publishes a CSV: the asset, who may see the offer (members), what is agreed
# (licensed banks, for credit assessment, at most two downloads), and the offer tying them.
mkdir -p data
printf 'credit_code,name,district\n91440101MA00000001,广州示例企业一有限公司,440106\n' \
    > data/firms.csv
cat > members.json <<'POLICY'
{"@type": "Set", "permission": [{"action": "use"}]}
POLICY
cat > firm-terms.json <<'POLICY'
{"@type": "Set", "permission": [{"action": "use", "constraint": [
  {"leftOperand": "kexin:role", "operator": "hasPart", "rightOperand": "FinancialInstitution"},
  {"leftOperand": "purpose", "operator": "isA", "rightOperand": "credit-assessment"},
  {"leftOperand": "count", "operator": "lteq", "rightOperand": "2"}]}]}
POLICY
(. ./bureau.env && dataspace assets add urn:kexin:asset:firm-list --title-zh 企业名录 \
    --data-grade general --region 440100 --file "$PWD/data/firms.csv")
(. ./bureau.env && dataspace policies lint firm-terms.json)
(. ./bureau.env && dataspace policies add members members.json)
(. ./bureau.env && dataspace policies add firm-terms firm-terms.json)
(. ./bureau.env && dataspace offers add cd-firms --access-policy members \
    --contract-policy firm-terms --asset urn:kexin:asset:firm-list)

# 5. The bank finds it in the bureau's catalogue (a provider's DSP address is its public URL
# followed by /dsp).
(. ./bank.env && dataspace catalog 'did:web:127.0.0.1%3A8181:bureau' \
    --address http://127.0.0.1:8181/dsp)

# 6. The bank fetches it: agreement and transfer in one call of its data contracts API, then
# the download from the bureau's data plane, with its SHA-256.
(. ./bank.env && dataspace fetch --connector http://127.0.0.1:8191 \
    --api-key "$CONNECTOR_MANAGEMENT_API_KEY" \
    --provider 'did:web:127.0.0.1%3A8181:bureau' --provider-address http://127.0.0.1:8181/dsp \
    --dataset urn:kexin:asset:firm-list --purpose credit-assessment --output firms.csv)
cmp data/firms.csv firms.csv && echo 'the bank has the firm list'
(. ./bank.env && dataspace agreements list)
