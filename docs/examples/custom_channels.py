# The lines marked "wrapper" give the fragment the `manager` of the basic example,
# inside an async function, and print the results as the basic example does.
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
