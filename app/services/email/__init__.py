"""The email family: templates and rendering, queued mails with digests and suppressions,
and batched SMTP sending paced by a rate limit shared by every worker process."""
