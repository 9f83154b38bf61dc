from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "clientarea.support"
    label = "support"
    verbose_name = "Support"

    def ready(self) -> None:
        from clientarea.accounts.permissions import Perm
        from clientarea.core.registry import NavItem, Tile, register_nav, register_tile

        from .selectors import ticket_open_count

        register_nav(NavItem("Support", "support:ticket_list", Perm.TICKETS.value, order=40))
        register_tile(
            Tile("Open tickets", "support:ticket_list", Perm.TICKETS.value, ticket_open_count, 40)
        )
        from clientarea.core.registry import AttentionProvider, register_attention

        from .attention import tickets_awaiting_reply

        register_attention(
            AttentionProvider("support.answered", Perm.TICKETS.value, tickets_awaiting_reply, 40)
        )
