#!/bin/sh
# publish (fake tokens, for stanch's scanner tests)
echo "//registry.npmjs.org/:_authToken=npm_KEpSbiHP5QW1cY4YxBfEvMkP2SxYJdUPDdFQ" > ~/.npmrc
export VAULT_TOKEN=hvs.CAESIQvEZU4YUWisJEpmiBZAOj3TBfWz21ccaskm9Ox07fomXtcq-KMNPV6FitNWQ-2IwN4LCaVWDZVGjbziUeMDMcb
export VAULT_BATCH=hvb.AAAAAQxsrhOzOkItgDcwnGBy2LqEsaOgqaHslPqAVnXuigvEJwyOvgh1owW-j6E8ODDWrMGpMJE_U-S296-5zBQ4TGLQjV206Hs7jrdZVf4CH92y6PCEksBORYfw9n8Ow6dbDqI0Eu
export VAULT_LEGACY=s.Q2Jq8OS0Ie8l0iAjg5JbyuM2
export DEPLOY_PASSWORD=correct-horse-battery-staple-42
