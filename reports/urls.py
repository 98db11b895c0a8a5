from django.urls import path

from . import views

app_name = "reports"
urlpatterns = [path("", views.outcomes_admin_view(), name="outcomes")]
