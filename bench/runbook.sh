#!/usr/bin/env bash
# The containment a team without stanch runs by hand or from a script: the
# same four calls stanch makes, with the AWS CLI. Used by `make bench` to
# compare per-alert times. Usage: runbook.sh ACCESS_KEY_ID
# (AWS_ENDPOINT_URL and credentials come from the environment.)
set -euo pipefail
key="$1"
aws sts get-access-key-info --access-key-id "$key" --output text --query Account >/dev/null
user=$(aws iam get-access-key-last-used --access-key-id "$key" --output text --query UserName)
aws iam update-access-key --user-name "$user" --access-key-id "$key" --status Inactive
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
aws iam put-user-policy --user-name "$user" --policy-name AWSRevokeOlderSessions --policy-document \
  "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Action\":[\"*\"],\"Resource\":[\"*\"],\"Condition\":{\"DateLessThan\":{\"aws:TokenIssueTime\":\"$now\"}}}]}"
