# The "Custom Channel Selection" example of the notification_integrations README. The
# README shows it as a fragment that uses `manager` (and NotificationPriority) from the
# basic example inside an async function; the lines marked "wrapper" give it that
# context and print the results as the basic example does. The fragment itself is as
# written, with only its import changed (notification_integrations -> pixalert).
# tests/test_examples.py runs it.
# fmt: off
# ruff: noqa: I001
import asyncio  # wrapper
from pixalert import NotificationManager, NotificationPriority  # wrapper
from pixalert import NotificationChannel


async def main():  # wrapper
    manager = NotificationManager()  # wrapper

    # Send to specific channels only
    results = await manager.send_alert(
        title="Custom Alert",
        message="This goes to email and Slack only",
        priority=NotificationPriority.HIGH,
        channels=[NotificationChannel.EMAIL, NotificationChannel.SLACK]
    )

    for channel, success in results.items():  # wrapper
        print(f"{channel.value}: {'✅' if success else '❌'}")  # wrapper


asyncio.run(main())  # wrapper
