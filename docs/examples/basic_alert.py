import asyncio
from pixalert import NotificationManager, NotificationPriority

async def send_alert():
    manager = NotificationManager()

    # Send a medium priority alert
    results = await manager.send_alert(
        title="High Memory Usage Detected",
        message="Memory usage has exceeded 85% threshold on server-01",
        priority=NotificationPriority.MEDIUM,
        metadata={
            "server": "server-01",
            "memory_usage": "87%",
            "threshold": "85%"
        }
    )

    # Check results
    for channel, success in results.items():
        print(f"{channel.value}: {'✅' if success else '❌'}")

# Run the example
asyncio.run(send_alert())
