# Deploy settings for the payments service.
REGION = "eu-west-1"

AWS_ACCESS_KEY_ID = "AKIAQYLPMN5HHHFPZAM2"
AWS_SECRET_ACCESS_KEY = "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"
BUCKET = "payments-exports"
