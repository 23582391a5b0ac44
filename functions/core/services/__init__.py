"""What the functions do, over the domain's ports: submit, show and cancel tasks; run them; notify their ends;
deliver webhooks; fail what reaches a dead-letter queue."""
